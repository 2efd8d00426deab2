//! First-run onboarding: until an administrator has a password, `hearth serve` logs a
//! one-time setup code at startup, and `hearth onboard` (on the box) prints a fresh
//! one. Either code lets the first administrator sign up in the web UI.

use crate::auth::session::{new_setup_code, setup_code_hash, SETUP_CODE_SECS};
use crate::config::Settings;
use crate::store::Store;
use anyhow::Context;

/// Called by `hearth serve`: logs a new setup code when onboarding is still open.
pub fn announce_if_needed(store: &Store, settings: &Settings) -> anyhow::Result<()> {
    if !store.needs_onboarding()? {
        return Ok(());
    }
    let code = new_setup_code();
    store.add_setup_code(&setup_code_hash(&code), SETUP_CODE_SECS)?;
    // The one place a setup code is logged: the operator must be able to read it here.
    tracing::warn!(
        "first-run setup: open http://{}/ in a browser and create the administrator with setup code {code} \
         (valid {} hours; `hearth onboard` prints a new one)",
        settings.server.listen,
        SETUP_CODE_SECS / 3600
    );
    Ok(())
}

/// `hearth onboard`: prints a fresh setup code (alone on the last line of stdout).
pub fn run(settings: &Settings) -> anyhow::Result<()> {
    let dir = &settings.storage.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let store = Store::open(&settings.database_path())?;
    if !store.needs_onboarding()? {
        anyhow::bail!(
            "this box is already set up: an administrator has a password. Log in to the web UI, or \
             create accounts with `hearth users add`"
        );
    }
    let code = new_setup_code();
    store.add_setup_code(&setup_code_hash(&code), SETUP_CODE_SECS)?;
    eprintln!(
        "Open the web UI (http://{}/ by default) and enter this setup code to create the administrator.",
        settings.server.listen
    );
    eprintln!("It is valid for {} hours and works once.", SETUP_CODE_SECS / 3600);
    println!("{code}");
    Ok(())
}
