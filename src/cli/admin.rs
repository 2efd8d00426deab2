//! `hearth users ...` and `hearth tokens ...`: account administration on the box.
//! These open the database directly, so they work with or without a running service.
//! Every change is recorded in the audit log with the actor `cli`.

use crate::audit::Actor;
use crate::auth::generate_token;
use crate::config::Settings;
use crate::store::{Role, Store};
use anyhow::Context;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user.
    Add {
        /// Name: 1-64 letters, digits, '.', '_', '-' or '@'.
        name: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
    },
    /// List users.
    List,
    /// Disable a user: their tokens and sessions stop working; their data stays.
    Disable { name: String },
    /// Enable a disabled user again.
    Enable { name: String },
    /// Delete a user with everything they own: conversations, documents, tokens, and
    /// their entries in the search index.
    Delete {
        name: String,
        /// Confirm: this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// Choose the skills one user may use, then print what they have.
    ///
    /// The box's defaults are the built-ins in `[skills] enabled` and the configured
    /// skills (webhooks, Home Assistant) not in `[skills] off_by_default`. Turning a skill
    /// on or off here holds for this user only, in every channel (chat, voice, Telegram,
    /// their workflows), from their next turn; a running service needs no restart.
    /// Without options, prints the user's skills.
    #[command(
        after_help = "Example:\n  hearth users skills bob --disable clock --enable calculate,create_note\n  hearth users skills bob --reset clock"
    )]
    Skills {
        name: String,
        /// Skills to turn on for this user (comma-separated or repeated).
        #[arg(long, value_name = "SKILL", value_delimiter = ',')]
        enable: Vec<String>,
        /// Skills to turn off for this user.
        #[arg(long, value_name = "SKILL", value_delimiter = ',')]
        disable: Vec<String>,
        /// Skills to give back the box's default for this user.
        #[arg(long, value_name = "SKILL", value_delimiter = ',')]
        reset: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create an API token for a user. The token is printed once, alone on the last
    /// line; only its hash is stored.
    Create {
        /// The user the token acts as.
        #[arg(long, value_name = "NAME")]
        user: String,
        /// A label to tell tokens apart, e.g. "laptop".
        #[arg(long, default_value = "default")]
        label: String,
        /// What it may be used for: chat, documents, voice, admin (repeat or separate
        /// with commas) [default: all]
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Days until it stops working [default: until revoked]
        #[arg(long, value_name = "DAYS")]
        expires_days: Option<u32>,
        /// Requests a minute this token may make, e.g. an integration kept below its
        /// user's `[limits] requests_per_minute` [default: only the user's limit]
        #[arg(long, value_name = "N")]
        requests_per_minute: Option<u32>,
    },
    /// List tokens (prefixes only; secrets are never stored).
    List {
        /// Only this user's tokens.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
    },
    /// Revoke a token by the prefix shown by `tokens list`.
    Revoke {
        /// The token's prefix, e.g. hth_1a2b3c4d.
        prefix: String,
    },
}

fn open(settings: &Settings) -> anyhow::Result<Store> {
    let dir = &settings.storage.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    super::unlock::open_store(settings)
}

fn when(ts: i64) -> String {
    if ts == 0 {
        return "-".into();
    }
    // Seconds since the epoch; shown as age so no time zone database is needed.
    let age = crate::store::now() - ts;
    match age {
        a if a < 120 => format!("{a}s ago"),
        a if a < 7200 => format!("{}m ago", a / 60),
        a if a < 172_800 => format!("{}h ago", a / 3600),
        a => format!("{}d ago", a / 86_400),
    }
}

pub fn users(cmd: UsersCommand, settings: &Settings) -> anyhow::Result<()> {
    let store = open(settings)?;
    let find = |name: &str| {
        store.find_user(name).with_context(|| format!("no user '{name}' (see `hearth users list`)"))
    };
    match cmd {
        UsersCommand::Disable { name } => {
            store.set_disabled(find(&name)?.id, true, &Actor::cli())?;
            eprintln!("Disabled '{name}': their tokens and sessions no longer work (their data stays).");
        }
        UsersCommand::Enable { name } => {
            store.set_disabled(find(&name)?.id, false, &Actor::cli())?;
            eprintln!("Enabled '{name}'.");
        }
        UsersCommand::Delete { name, yes } => {
            let user = find(&name)?;
            if !yes {
                anyhow::bail!(
                    "deleting '{name}' removes all their conversations and documents; add --yes to do it"
                );
            }
            store.delete_user(user.id, &Actor::cli())?;
            // Cached keys and values of conversations live in this folder; it is only a
            // cache, and the running service recreates it.
            let _ = std::fs::remove_dir_all(settings.storage.data_dir.join("kv-cache"));
            eprintln!("Deleted '{name}' and everything they owned.");
        }
        UsersCommand::Add { name, admin } => {
            let role = if admin { Role::Admin } else { Role::User };
            let user = store.create_user_by(&name, role, &Actor::cli())?;
            println!("Created {} '{}'.", user.role.as_str(), user.name);
            println!("Next: hearth tokens create --user {}", user.name);
        }
        UsersCommand::Skills { name, enable, disable, reset } => {
            let user = find(&name)?;
            let changes = skill_changes(&enable, &disable, &reset)?;
            let known = crate::skills::known_in(settings);
            crate::skills::check_names(&known, &changes)?;
            let set = match changes.is_empty() {
                true => store.user_skills(user.id)?,
                false => store.set_user_skills(user.id, &changes, &Actor::cli())?,
            };
            println!("{:<20} {:<4} WHY", "SKILL", "ON");
            for s in crate::skills::standings(&known, &set) {
                let on = |b: bool| if b { "on" } else { "off" };
                let why = match s.setting {
                    None => "box default".to_string(),
                    Some(_) => format!("set for {name} (box default: {})", on(s.default)),
                };
                println!("{:<20} {:<4} {why}", s.name, on(s.enabled));
            }
        }
        UsersCommand::List => {
            let users = store.list_users()?;
            if users.is_empty() {
                println!("No users. Create one with: hearth users add NAME --admin");
            }
            for u in users {
                println!("{:<24} {:<6} created {}", u.name, u.role.as_str(), when(u.created_at));
            }
        }
    }
    Ok(())
}

/// The settings `--enable`, `--disable` and `--reset` ask for; a skill in two of them is
/// an error.
fn skill_changes(
    enable: &[String],
    disable: &[String],
    reset: &[String],
) -> anyhow::Result<Vec<(String, Option<bool>)>> {
    let mut changes: Vec<(String, Option<bool>)> = Vec::new();
    for (names, setting) in [(enable, Some(true)), (disable, Some(false)), (reset, None)] {
        for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            if changes.iter().any(|(n, _)| n == name) {
                anyhow::bail!(
                    "'{name}' is named twice: give each skill in one of --enable, --disable, --reset"
                );
            }
            changes.push((name.to_string(), setting));
        }
    }
    Ok(changes)
}

pub fn tokens(cmd: TokensCommand, settings: &Settings) -> anyhow::Result<()> {
    let store = open(settings)?;
    match cmd {
        TokensCommand::Create { user, label, scopes, expires_days, requests_per_minute } => {
            let grant = crate::auth::scopes::TokenGrant::new(&scopes, expires_days)
                .and_then(|g| g.with_requests_per_minute(requests_per_minute))
                .map_err(anyhow::Error::msg)?;
            let owner = store.find_user(&user).with_context(|| {
                format!("no user '{user}'; create it first with `hearth users add {user}`")
            })?;
            let token = generate_token();
            store.insert_token_with(owner.id, &label, &token.prefix, &token.hash, grant, &Actor::cli())?;
            let until =
                grant.expires_at.map_or_else(|| "until revoked".into(), |t| format!("until {}", when(t)));
            let rate = grant.requests_per_minute.map(|n| format!(", at most {n} requests a minute"));
            eprintln!(
                "Created token {} for '{}' (label '{label}', scopes {}, {until}{}).",
                token.prefix,
                owner.name,
                grant.scopes.names().join(","),
                rate.unwrap_or_default()
            );
            eprintln!("Copy it now: it is shown only once. Use it as 'Authorization: Bearer <token>'.");
            println!("{}", token.secret);
        }
        TokensCommand::List { user } => {
            let tokens = store.list_tokens(user.as_deref())?;
            if tokens.is_empty() {
                println!("No tokens.");
            }
            for t in tokens {
                let expired = t.expires_at.is_some_and(|e| e <= crate::store::now());
                let status = if t.revoked {
                    "revoked"
                } else if expired {
                    "expired"
                } else {
                    "active"
                };
                let used = t.last_used_at.map_or_else(|| "never".into(), when);
                let rate = t.requests_per_minute.map(|n| format!(" {n}/min"));
                println!(
                    "{:<14} {:<16} {:<16} {:<8} created {:<10} used {:<10} {}{}",
                    t.prefix,
                    t.user,
                    t.label,
                    status,
                    when(t.created_at),
                    used,
                    t.scopes.join(","),
                    rate.unwrap_or_default()
                );
            }
        }
        TokensCommand::Revoke { prefix } => {
            let prefix = crate::auth::visible_prefix(&prefix).to_string();
            store.revoke_token(&prefix, &Actor::cli())?;
            println!("Revoked {prefix}.");
        }
    }
    Ok(())
}
