//! Which skills one user may use: the box's defaults and the owner's per-user settings.
//!
//! Each skill the box has is on or off by default: a built-in is on when `[skills] enabled`
//! names it; a configured skill (a webhook, Home Assistant's) is on unless
//! `[skills] off_by_default` names it. The owner may turn a skill on or off for one user
//! (`user_skills`, see `store/user_skills.rs`; no setting: the default). So a user gets
//! the skills on by default, plus those turned on for them, minus those turned off for
//! them. Callers with no user (the console, voice satellites) get the defaults.
//!
//! [`Skills::allowed`] is the one place this is decided: every channel's turn
//! (`assistant/prepare.rs`) and every workflow's skill step (run as its owner) offer and
//! run skills only through the [`Allowed`] it returns, so a skill the model names anyway
//! is refused when it would run.

use super::{run, Context, Skills, ToolRun, BUILT_IN};
use crate::config::Settings;
use crate::engine::{ToolCall, ToolSpec};
use crate::knowledge::Citation;
use crate::store::{StoreError, UserSkills};
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;

/// A skill the box has and its default.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    pub name: String,
    /// What the model reads (unknown to the command line, which builds no skills).
    pub description: Option<String>,
    pub on_by_default: bool,
}

/// A skill as it stands for one user: what the owner's API and `hearth users skills` show.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Standing {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// On for everyone the owner did not set otherwise.
    pub default: bool,
    /// The owner's setting for this user; `None`: the default.
    pub setting: Option<bool>,
    /// Whether this user has it.
    pub enabled: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PerUserError {
    #[error("no skill is named '{name}' (there are: {known})")]
    UnknownSkill { name: String, known: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether the box offers the skill `name` to everyone the owner did not set otherwise.
pub fn box_default(settings: &Settings, name: &str) -> bool {
    let s = &settings.skills;
    match BUILT_IN.contains(&name) {
        true => s.enabled.iter().any(|e| e == name),
        false => !s.off_by_default.iter().any(|o| o == name),
    }
}

/// The skills these settings give the box, with their defaults, without building them:
/// what the command line checks names against. The server has the same ones.
pub fn known_in(settings: &Settings) -> Vec<Known> {
    let mut names: Vec<String> = BUILT_IN.iter().map(|n| n.to_string()).collect();
    names.extend(settings.skills.webhooks.iter().map(|w| w.name.clone()));
    if settings.home_assistant.enabled() {
        names.extend(super::home_assistant::NAMES.iter().map(|n| n.to_string()));
    }
    names.sort();
    let known = names.into_iter().map(|name| Known {
        on_by_default: box_default(settings, &name),
        name,
        description: None,
    });
    known.collect()
}

/// Each known skill as it stands for a user with these settings (settings for skills the
/// box no longer has are left out).
pub fn standings(known: &[Known], settings: &UserSkills) -> Vec<Standing> {
    known
        .iter()
        .map(|k| {
            let setting = settings.get(&k.name).copied();
            Standing {
                name: k.name.clone(),
                description: k.description.clone(),
                default: k.on_by_default,
                setting,
                enabled: setting.unwrap_or(k.on_by_default),
            }
        })
        .collect()
}

/// Refuses changes that name a skill the box does not have, naming the first.
pub fn check_names(known: &[Known], changes: &[(String, Option<bool>)]) -> Result<(), PerUserError> {
    match changes.iter().find(|(name, _)| !known.iter().any(|k| k.name == *name)) {
        None => Ok(()),
        Some((name, _)) => Err(PerUserError::UnknownSkill {
            name: name.clone(),
            known: known.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", "),
        }),
    }
}

impl Skills {
    /// Every skill the box has, with its description and default.
    pub fn known(&self) -> Vec<Known> {
        self.skills
            .iter()
            .map(|(name, e)| Known {
                name: name.to_string(),
                description: Some(e.skill.description().to_string()),
                on_by_default: e.on_by_default,
            })
            .collect()
    }

    /// What this caller may use: the defaults, and for a user the owner's settings.
    pub async fn allowed(&self, ctx: &Context) -> Result<Allowed, StoreError> {
        let settings = match (ctx.user_id, &self.store) {
            (Some(user_id), Some(store)) => {
                store.run(move |s| s.user_skills(user_id)).await.map(Some).or_else(|e| match e {
                    // A user deleted while their turn starts has no settings to keep.
                    StoreError::NotFound(_) => Ok(Some(UserSkills::new())),
                    e => Err(e),
                })?
            }
            _ => None,
        };
        let settings = settings.unwrap_or_default();
        let names = self
            .skills
            .iter()
            .filter(|(name, e)| settings.get(**name).copied().unwrap_or(e.on_by_default))
            .map(|(name, _)| *name)
            .collect();
        Ok(Allowed { skills: self.clone(), names: Arc::new(names) })
    }

    /// Each skill as it stands for the user; `NotFound` if there is no such user.
    pub async fn standings_of(&self, user_id: i64) -> Result<Vec<Standing>, StoreError> {
        let settings = self.store()?.run(move |s| s.user_skills(user_id)).await?;
        Ok(standings(&self.known(), &settings))
    }

    /// Sets skills on (`Some(true)`), off, or back to the default (`None`) for the user,
    /// all or none: a name the box does not have is refused before anything is written.
    /// Recorded in the audit log as done by `by`.
    pub async fn set_for(
        &self,
        user_id: i64,
        changes: Vec<(String, Option<bool>)>,
        by: crate::audit::Actor,
    ) -> Result<Vec<Standing>, PerUserError> {
        let known = self.known();
        check_names(&known, &changes)?;
        let settings = self.store()?.run(move |s| s.set_user_skills(user_id, &changes, &by)).await?;
        Ok(standings(&known, &settings))
    }

    fn store(&self) -> Result<&crate::store::Store, StoreError> {
        self.store.as_ref().ok_or_else(|| StoreError::Task("these skills keep no per-user settings".into()))
    }
}

/// The skills one caller may use, resolved once for a turn or a step by
/// [`Skills::allowed`]: only these are shown to the model or run.
#[derive(Clone)]
pub struct Allowed {
    skills: Skills,
    names: Arc<BTreeSet<&'static str>>,
}

impl Allowed {
    /// The allowed skills' names.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.names.iter().copied()
    }

    /// The tools to show the model: the allowed skills that can serve this caller.
    pub fn specs(&self, ctx: &Context) -> Vec<ToolSpec> {
        self.names
            .iter()
            .filter_map(|name| self.skills.skills.get(name))
            .filter(|e| e.skill.available(ctx))
            .map(|e| ToolSpec {
                name: e.skill.name().to_string(),
                description: Some(e.skill.description().to_string()),
                parameters: e.skill.parameters(),
            })
            .collect()
    }

    /// Runs one call under the skill's timeout; a skill this caller may not use (or
    /// that cannot serve it) is refused with a result the model reads.
    pub async fn run(&self, call: &ToolCall, ctx: Context) -> (ToolRun, Vec<Citation>) {
        let name = call.name.as_str();
        let skill = match self.skills.skills.get(name) {
            None => Err(format!("there is no tool named '{name}'")),
            Some(_) if !self.names.contains(name) => {
                tracing::info!(skill = name, user_id = ?ctx.user_id, "a skill this user may not use was refused");
                Err(format!("the tool '{name}' is not enabled for this user"))
            }
            Some(e) if !e.skill.available(&ctx) => Err(format!("the tool '{name}' cannot serve this caller")),
            Some(e) => Ok(&e.skill),
        };
        run(skill, self.skills.timeout, call, ctx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notices::Channel;
    use crate::store::Role;
    use serde_json::json;
    use std::time::Duration;

    fn ctx(user_id: Option<i64>) -> Context {
        Context::new(user_id, Channel::Chat)
    }

    fn names(allowed: &Allowed) -> Vec<&'static str> {
        allowed.names().collect()
    }

    #[tokio::test]
    async fn a_user_gets_the_defaults_plus_those_turned_on_minus_those_turned_off() {
        let (_dir, store) = crate::store::temp_store();
        let alice = store.create_user("alice", Role::User).unwrap().id;
        let bob = store.create_user("bob", Role::User).unwrap().id;
        let skills =
            Skills::built_in(&["clock".into()], Duration::from_secs(5), None, None).with_store(store.clone());
        assert_eq!(names(&skills.allowed(&ctx(Some(alice))).await.unwrap()), ["clock"], "the box's default");
        assert_eq!(names(&skills.allowed(&ctx(None)).await.unwrap()), ["clock"], "no user: the defaults");

        store
            .set_user_skills(
                bob,
                &[("clock".into(), Some(false)), ("calculate".into(), Some(true))],
                &crate::audit::Actor::system(),
            )
            .unwrap();
        let bobs = skills.allowed(&ctx(Some(bob))).await.unwrap();
        assert_eq!(names(&bobs), ["calculate"]);
        assert_eq!(
            bobs.specs(&ctx(Some(bob))).iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["calculate"]
        );
        assert_eq!(names(&skills.allowed(&ctx(Some(alice))).await.unwrap()), ["clock"], "alice keeps hers");

        // Named anyway, a skill bob may not use is refused; alice's runs.
        let (run, _) = bobs.run(&ToolCall::new("clock", json!({})), ctx(Some(bob))).await;
        assert!(!run.ok && run.result.contains("'clock' is not enabled for this user"), "{run:?}");
        let (run, _) =
            bobs.run(&ToolCall::new("calculate", json!({"expression": "2+3"})), ctx(Some(bob))).await;
        assert!(run.ok, "{run:?}");
        let alices = skills.allowed(&ctx(Some(alice))).await.unwrap();
        let (run, _) =
            alices.run(&ToolCall::new("calculate", json!({"expression": "2+3"})), ctx(Some(alice))).await;
        assert!(!run.ok && run.result.contains("not enabled"), "off by default: {run:?}");
    }

    #[tokio::test]
    async fn standings_show_default_setting_and_effective_and_unknown_names_are_refused_whole() {
        let (_dir, store) = crate::store::temp_store();
        let alice = store.create_user("alice", Role::User).unwrap().id;
        let skills =
            Skills::built_in(&["clock".into()], Duration::from_secs(5), None, None).with_store(store.clone());
        let set = |pairs: &[(&str, Option<bool>)]| -> Vec<(String, Option<bool>)> {
            pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect()
        };
        let after = skills
            .set_for(
                alice,
                set(&[("clock", Some(false)), ("calculate", Some(true))]),
                crate::audit::Actor::system(),
            )
            .await
            .unwrap();
        let row = |name: &str| after.iter().find(|s| s.name == name).unwrap().clone();
        assert_eq!(
            (row("clock").default, row("clock").setting, row("clock").enabled),
            (true, Some(false), false)
        );
        assert_eq!(
            (row("calculate").default, row("calculate").setting, row("calculate").enabled),
            (false, Some(true), true)
        );
        assert!(row("clock").description.is_some_and(|d| d.contains("time")));

        let err = skills
            .set_for(alice, set(&[("clock", None), ("weather", Some(true))]), crate::audit::Actor::system())
            .await
            .unwrap_err();
        assert!(matches!(&err, PerUserError::UnknownSkill { name, .. } if name == "weather"), "{err}");
        assert!(err.to_string().contains("there are: calculate, clock"), "{err}");
        assert_eq!(store.user_skills(alice).unwrap().get("clock"), Some(&false), "nothing was written");

        let back =
            skills.set_for(alice, set(&[("clock", None)]), crate::audit::Actor::system()).await.unwrap();
        assert_eq!(back.iter().find(|s| s.name == "clock").unwrap().setting, None);
        assert!(back.iter().find(|s| s.name == "clock").unwrap().enabled, "back to the default");
        assert!(matches!(skills.standings_of(999).await, Err(StoreError::NotFound(_))));
    }

    #[test]
    fn the_command_line_knows_the_same_names_and_defaults_from_the_settings() {
        let mut settings = Settings::default();
        settings.skills.enabled = vec!["clock".into()];
        let known = known_in(&settings);
        assert_eq!(known.len(), BUILT_IN.len());
        assert!(known.iter().all(|k| k.on_by_default == (k.name == "clock")), "{known:?}");
        settings.home_assistant.url = "http://ha.local:8123".into();
        settings.skills.off_by_default = vec!["ha_call_service".into()];
        let known = known_in(&settings);
        let ha = |name: &str| known.iter().find(|k| k.name == name).unwrap().on_by_default;
        assert!(!ha("ha_call_service") && ha("ha_get_state"), "{known:?}");
    }
}
