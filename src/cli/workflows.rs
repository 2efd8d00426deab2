//! `hearth workflows`: list the workflow files, check them, run one in this process, read
//! the runs recorded (by the service or by `run`), and have the running service reload
//! the files (`reload`, over its API).

use crate::assistant::Assistant;
use crate::config::Settings;
use crate::engine::{ModelState, Registry};
use crate::store::{RunFilter, Store};
use crate::telemetry::Metrics;
use crate::workflows::{Action, Services, Workflows};
use anyhow::{bail, Context};
use clap::Subcommand;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum WorkflowsCommand {
    /// List the workflows: name, trigger, on or off, next run, owner.
    List,
    /// Check every workflow file (YAML in workflows.dir, default <data_dir>/workflows);
    /// print each error as file:line: field: message and exit 1 if there is any.
    Check,
    /// Run a workflow now, in this process (its prompt steps load the model), and print
    /// each step's result. The run is recorded like the service's.
    Run {
        /// The workflow's name.
        name: String,
        /// The input, as JSON (what `{{ input.… }}` reads), e.g. '{"body": "hello"}'.
        #[arg(long, value_name = "JSON")]
        input: Option<String>,
    },
    /// Have the running service read the workflow files again (an administrator's token):
    /// print how many there are and each file's error (a file with errors keeps the version
    /// the service held); exit 1 if there is any error.
    Reload {
        /// The service [default: this box's, as `hearth health` reaches it]
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// An administrator's API token [env: HEARTH_TOKEN]
        #[arg(long, env = "HEARTH_TOKEN", hide_env_values = true, value_name = "TOKEN")]
        token: String,
    },
    /// Show a workflow's last runs, each step's result included.
    Runs {
        /// The workflow's name.
        name: String,
        /// How many runs, newest first.
        #[arg(long, default_value_t = 5)]
        last: u32,
    },
}

pub fn run(cmd: WorkflowsCommand, settings: Settings) -> anyhow::Result<ExitCode> {
    match cmd {
        WorkflowsCommand::Check => return Ok(check(&settings)),
        WorkflowsCommand::Reload { url, token } => return reload(&settings, url, &token),
        _ => {}
    }
    std::fs::create_dir_all(&settings.storage.data_dir)?;
    let store = super::unlock::open_store(&settings)?;
    let workflows = Workflows::load(&settings, store.clone(), Default::default());
    match cmd {
        WorkflowsCommand::Check | WorkflowsCommand::Reload { .. } => unreachable!("answered above"),
        WorkflowsCommand::List => {
            for loaded in workflows.all() {
                let l = workflows.listed(&loaded)?;
                let next = l.next_run.map_or("-".to_string(), |t| {
                    chrono::DateTime::from_timestamp(t, 0)
                        .map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_default()
                });
                let on = if l.enabled { "on" } else { "off" };
                println!(
                    "{:<20} {:<4} {:<9} {:<24} next: {next:<19} owner: {}",
                    l.name, on, l.trigger, l.trigger_detail, l.owner
                );
            }
            for e in workflows.errors() {
                eprintln!("error: {e}");
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkflowsCommand::Runs { name, last } => {
            if workflows.get(&name).is_none() {
                bail!("no workflow is named '{name}' (hearth workflows list)");
            }
            for r in store.workflow_runs(&RunFilter { workflow: Some(name), limit: last })? {
                println!(
                    "run {} ({}, {}): {}",
                    r.id,
                    r.trigger,
                    r.state,
                    r.output.as_deref().or(r.error.as_deref()).unwrap_or("")
                );
                for step in r.steps.as_array().into_iter().flatten() {
                    let said = step["output"].as_str().or(step["error"].as_str()).unwrap_or("");
                    println!(
                        "  {} [{}] {} ms: {said}",
                        step["id"].as_str().unwrap_or("?"),
                        step["kind"].as_str().unwrap_or("?"),
                        step["ms"]
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkflowsCommand::Run { name, input } => run_now(settings, store, workflows, &name, input.as_deref()),
    }
}

/// `POST /api/workflows/reload` on the running service.
fn reload(settings: &Settings, url: Option<String>, token: &str) -> anyhow::Result<ExitCode> {
    let base = url.unwrap_or_else(|| super::health::service_url(settings));
    let url = format!("{}/api/workflows/reload", base.trim_end_matches('/'));
    let agent = crate::tls::client::agent_with_timeout(settings, std::time::Duration::from_secs(60));
    let answer = agent.post(&url).set("Authorization", &format!("Bearer {token}")).call();
    let body: serde_json::Value = match answer {
        Ok(response) => response.into_json()?,
        Err(ureq::Error::Status(status, response)) => {
            let body: serde_json::Value = response.into_json().unwrap_or_default();
            let said = body["error"]["message"].as_str().unwrap_or("");
            bail!("{url} answered {status}: {said}");
        }
        Err(e) => bail!("cannot reach {url}: {e}"),
    };
    println!("reloaded: {} workflows", body["workflows"]);
    for kept in body["kept"].as_array().into_iter().flatten() {
        println!("kept the last good version of {}", kept.as_str().unwrap_or("?"));
    }
    let errors = body["errors"].as_array().cloned().unwrap_or_default();
    for e in &errors {
        eprintln!("error: {}", e.as_str().unwrap_or_default());
    }
    Ok(if errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Prints each file's errors; non-zero when there is any.
fn check(settings: &Settings) -> ExitCode {
    let (good, bad) = crate::workflows::read_dir(settings);
    for w in &good {
        println!("ok: {} ({}): {}", w.file.display(), w.name, w.trigger.kind());
    }
    for e in &bad {
        eprintln!("error: {e}");
    }
    if good.is_empty() && bad.is_empty() {
        println!("no workflow files in {}", settings.workflows_dir().display());
    }
    if bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_now(
    settings: Settings,
    store: Store,
    workflows: Workflows,
    name: &str,
    input: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let Some(loaded) = workflows.get(name) else {
        for e in workflows.errors() {
            eprintln!("error: {e}");
        }
        bail!("no workflow is named '{name}' (hearth workflows list)");
    };
    let input: serde_json::Value = match input {
        Some(text) => serde_json::from_str(text).context("--input is not JSON")?,
        None => serde_json::json!({}),
    };
    let settings = Arc::new(settings);
    let needs_model = loaded.workflow.steps.iter().any(|s| matches!(s.action, Action::Prompt(_)));
    let model = crate::models::resolve_model_path(&settings.model.path, &settings.storage.data_dir);
    let models = Registry::start(settings.clone(), model, Metrics::new());
    if needs_model {
        loop {
            match models.default_engine().state() {
                ModelState::Loading { .. } => std::thread::sleep(std::time::Duration::from_millis(100)),
                ModelState::Failed { error, .. } => {
                    bail!("the workflow asks the model, which cannot load: {error}")
                }
                ModelState::Ready(_) => break,
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let notices = crate::notices::Notices::default();
    let reminders = crate::reminders::Reminders::new(store.clone(), notices.clone(), Default::default());
    let skills = crate::skills::Skills::built_in(
        &settings.skills.enabled,
        std::time::Duration::from_secs(settings.skills.timeout_secs),
        None,
        Some(reminders),
    )
    .with_configured(&settings)
    .map_err(anyhow::Error::msg)?
    .with_store(store.clone());
    let assistant = Assistant::new(settings.clone(), models).with_store(store).with_skills(skills.clone());
    workflows.set_services(Services {
        assistant,
        skills,
        notices,
        timeout: std::time::Duration::from_secs(settings.workflows.run_timeout_secs),
    });
    let run = runtime.block_on(async {
        let (_, task) = workflows.start(name, "manual", input).await?;
        anyhow::Ok(task.await?)
    })?;
    for step in run.steps.as_array().into_iter().flatten() {
        let said = step["output"]
            .as_str()
            .map(|o| format!("ok: {o}"))
            .or(step["error"].as_str().map(|e| format!("error: {e}")));
        println!(
            "{} [{}] {}",
            step["id"].as_str().unwrap_or("?"),
            step["kind"].as_str().unwrap_or("?"),
            said.unwrap_or_default()
        );
    }
    println!("run {}: {}", run.id, run.state);
    Ok(if run.state == "done" { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
