//! The skills the configuration defines besides the built-ins: webhook skills
//! (`[[skills.webhooks]]`, on once defined) and Home Assistant's (on once
//! `[home_assistant] url` is set).

use super::{home_assistant, webhook, Skill, BUILT_IN};
use crate::config::Settings;
use std::sync::Arc;

/// Checks the webhooks' definitions and names (no secrets read): errors name the field.
pub fn check_webhooks(settings: &Settings) -> Result<(), String> {
    let webhooks = &settings.skills.webhooks;
    for (i, w) in webhooks.iter().enumerate() {
        webhook::check(w, &settings.outbound)?;
        let taken = BUILT_IN.iter().chain(home_assistant::NAMES).find(|n| **n == w.name);
        if let Some(name) = taken {
            return Err(format!(
                "invalid value for skills.webhooks[{name}].name: a built-in skill is named '{name}'"
            ));
        }
        if webhooks[..i].iter().any(|other| other.name == w.name) {
            return Err(format!("invalid value for skills.webhooks[{}].name: defined twice", w.name));
        }
    }
    let configured = || webhooks.iter().map(|w| w.name.as_str()).chain(home_assistant::NAMES.iter().copied());
    if let Some(name) = settings.skills.off_by_default.iter().find(|n| !configured().any(|c| c == n.as_str()))
    {
        return Err(format!(
            "invalid value for skills.off_by_default: '{name}' is not a webhook or Home Assistant skill \
             (built-ins are off by default unless skills.enabled names them)"
        ));
    }
    Ok(())
}

/// The configured skills, with their secrets read (token files, environment variables):
/// an error names the field.
pub fn configured(settings: &Settings) -> Result<Vec<Arc<dyn Skill>>, String> {
    let mut skills: Vec<Arc<dyn Skill>> = Vec::new();
    for w in &settings.skills.webhooks {
        skills.push(Arc::new(webhook::Webhook::new(w, &settings.outbound)?));
    }
    if let Some(ha) = home_assistant::HomeAssistant::new(&settings.home_assistant, &settings.outbound)? {
        skills.extend(ha.skills());
    }
    Ok(skills)
}

impl super::Skills {
    /// These skills and the configured ones ([`configured`]), on by default unless
    /// `[skills] off_by_default` names them.
    pub fn with_configured(self, settings: &Settings) -> Result<super::Skills, String> {
        let skills = configured(settings)?.into_iter();
        Ok(skills.fold(self, |all, skill| {
            let on = super::box_default(settings, skill.name());
            all.with_default(skill, on)
        }))
    }
}
