//! `schedules`: every `[[schedule]]` with its trigger, destinations, next run, last run and
//! outcome, and any staleness warning. It reads the config and the job journal only, so it
//! works whether or not the service runs.

use anyhow::Result;
use clap::Args;
use sstore_core::schedule::{
    self, OffsetDateTime, Schedule, ScheduleStatus, human_duration, relative,
};

use super::{Context, print_json};

#[derive(Debug, Args)]
pub struct SchedulesArgs {
    /// Print the schedules as JSON (the same data as the service's GET /api/v1/schedules)
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Context, args: SchedulesArgs) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    let status = schedule::read_status(&ctx.config, now)?;
    for path in &status.unreadable_records {
        eprintln!(
            "warning: cannot read the job record {}; it is left out",
            path.display()
        );
    }
    if args.json {
        return print_json(&status);
    }
    if status.schedules.is_empty() {
        let file = ctx
            .config
            .path
            .as_ref()
            .map(|p| format!(" ({})", p.display()))
            .unwrap_or_default();
        println!("No schedules: add a [[schedule]] section to the config{file}.");
        return Ok(());
    }
    let schedules = schedule::schedules(&ctx.config)?;
    for (i, (schedule, st)) in schedules.iter().zip(&status.schedules).enumerate() {
        if i > 0 {
            println!();
        }
        print_one(schedule, st, now);
    }
    Ok(())
}

fn print_one(schedule: &Schedule, st: &ScheduleStatus, now: OffsetDateTime) {
    let at = |t: OffsetDateTime| format!("{} ({})", schedule.trigger.format(t), relative(t, now));
    let on_key_change = if st.on_key_change {
        ", and after every Master Key change"
    } else {
        ""
    };
    println!("{}: {}{on_key_change}", st.name, st.trigger);
    let destinations: Vec<&str> = st
        .directory
        .iter()
        .chain(&st.targets)
        .map(String::as_str)
        .collect();
    if destinations.is_empty() {
        println!(
            "  destinations  none: give the schedule a directory or targets, or set [backup] directory"
        );
    } else {
        println!("  destinations  {}", destinations.join(", "));
    }
    let delay = if schedule.random_delay.is_zero() {
        String::new()
    } else {
        format!(
            ", plus a random delay of up to {}",
            human_duration(schedule.random_delay)
        )
    };
    if st.due && st.last_run.is_none() {
        println!(
            "  next run      now (it never ran){delay}: the service runs it as soon as it is running"
        );
    } else if st.due {
        println!(
            "  next run      due since {}{delay}: the service runs it once as soon as it is running",
            at(st.next_run)
        );
    } else {
        println!("  next run      {}{delay}", at(st.next_run));
    }
    match &st.last_run {
        None => println!("  last run      never"),
        Some(run) => {
            let failure = run
                .failure_message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            println!(
                "  last run      {}, {} (job {}){failure}",
                at(run.started),
                run.shown_state,
                run.id
            );
            if let Some(outcome) = st.last_outcome.filter(|o| *o != run.state) {
                println!("  last outcome  {outcome}");
            }
        }
    }
    match st.last_success {
        Some(t) => println!("  last success  {}", at(t)),
        None if st.last_run.is_some() => println!("  last success  never"),
        None => {}
    }
    if let Some(warning) = &st.stale {
        println!("  warning: {warning}");
    }
}
