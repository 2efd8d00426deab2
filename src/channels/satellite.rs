//! Notices told on the voice satellites. A Wyoming server cannot speak to a satellite on
//! its own (Home Assistant connects to it, not the other way), so Hearth asks Home
//! Assistant to: `POST /api/services/assist_satellite/announce` with the satellites of
//! `[home_assistant] announce_entity` and the text, through the outbound guard with the
//! long-lived token (`skills::home_assistant`).
//!
//! Told here: the timers and reminders `voice.wyoming_user` set from a satellite, and what
//! that user's workflows tell the satellite (`notify` with `to: satellite`, or to every
//! channel), and announcements (the MQTT `announce` command). A reminder announced is recorded as told; one whose announcement failed (Home
//! Assistant down, a refused token) stays untold, so the web UI shows it when it next
//! connects; it was written into its conversation when it rang either way.

use crate::config::Settings;
use crate::notices::{Notice, Target};
use crate::reminders::Reminders;
use crate::skills::home_assistant::HomeAssistant;
use tokio::sync::broadcast::error::RecvError;

/// Announces one user's satellite notices, and announcements, through Home Assistant.
pub struct Announcer {
    ha: HomeAssistant,
    entities: Vec<String>,
    /// `voice.wyoming_user`'s id; `None`: none is set, only announcements are said.
    user_id: Option<i64>,
}

impl Announcer {
    /// The announcer for `user_id` (satellites' user, if any); `None` when
    /// `[home_assistant]` has no `url` or no `announce_entity`. An error (the token cannot
    /// be read) names the setting and never holds the token.
    pub fn new(settings: &Settings, user_id: Option<i64>) -> Result<Option<Announcer>, String> {
        let ha_settings = &settings.home_assistant;
        if !ha_settings.announces() {
            return Ok(None);
        }
        let Some(ha) = HomeAssistant::new(ha_settings, &settings.outbound)? else { return Ok(None) };
        Ok(Some(Announcer { ha, entities: ha_settings.announce_entity.clone(), user_id }))
    }

    /// Tells the notices meant for the satellites until the server stops: first the
    /// satellite reminders that rang while nothing could announce them.
    pub async fn run(self, reminders: Reminders) {
        tracing::info!(satellites = ?self.entities, "satellite notices are announced through Home Assistant");
        let mut live = reminders.notices().subscribe();
        for notice in reminders.missed_on("satellite").await {
            self.tell(&reminders, &notice).await;
        }
        loop {
            match live.recv().await {
                Ok(notice) => self.tell(&reminders, &notice).await,
                Err(RecvError::Lagged(_)) => {
                    for notice in reminders.missed_on("satellite").await {
                        self.tell(&reminders, &notice).await;
                    }
                }
                Err(RecvError::Closed) => break,
            }
        }
    }

    async fn tell(&self, reminders: &Reminders, notice: &Notice) {
        let concerns = match self.user_id {
            Some(user_id) => notice.concerns(user_id),
            None => notice.is_announcement(),
        };
        if !concerns || !notice.is_for(Target::Satellite) {
            return;
        }
        let reminder = notice.rung().map(|r| r.id);
        match self.ha.announce(&self.entities, &notice.text).await {
            Ok(()) => {
                tracing::info!(reminder, "announced on the satellites");
                if let Some(id) = reminder {
                    reminders.delivered(id).await;
                }
            }
            // What Home Assistant said, never the token or the text.
            Err(e) => tracing::warn!(
                reminder,
                error = %e,
                "Home Assistant: a notice could not be announced on the satellites; the web UI shows it"
            ),
        }
    }
}
