//! Remote control of the running box: what the MQTT commands (`mqtt/commands.rs`) ask
//! for, written once here so any other transport can ask the same: announce a text to
//! everyone listening, re-read the config file and apply what can change at run time
//! ([`reload`]), load or unload a model through the engine registry (with its memory
//! checks).
//!
//! Every answer is a JSON value saying what happened, or an [`ApiError`] whose stable code
//! (`bad_payload`, `unknown_model`, `insufficient_memory`, `invalid_config`, ...) the
//! caller passes on.

pub mod reload;

pub use reload::{ConfigSource, LiveSettings, Reloaded};

use crate::engine::{EngineError, ModelState, Registry};
use crate::error::{ApiError, ErrorCode};
use crate::notices::{Notice, Notices};
use crate::store::Store;
use crate::workflows::Workflows;
use serde_json::{json, Value};

/// The longest announcement, in characters: a sentence or two, spoken.
pub const MAX_ANNOUNCEMENT_CHARS: usize = 500;

/// What remote commands act on. Cheap to clone.
#[derive(Clone)]
pub struct Control {
    pub notices: Notices,
    pub models: Registry,
    pub store: Store,
    pub workflows: Workflows,
    pub settings: LiveSettings,
}

impl Control {
    /// Tells `text` to everyone listening: every user's web UI (`/api/events`, event
    /// `announcement`), voice WebSocket connections (spoken), and the satellites through
    /// Home Assistant when `[home_assistant] announce_entity` is set. Nothing keeps it
    /// for later: who is not listening does not hear it (`listeners` says whether anyone was).
    pub fn announce(&self, text: &str, source: &'static str) -> Result<Value, ApiError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ApiError::new(ErrorCode::BadPayload, "text is empty"));
        }
        let chars = text.chars().count();
        if chars > MAX_ANNOUNCEMENT_CHARS {
            return Err(ApiError::new(
                ErrorCode::BadPayload,
                format!("text is {chars} characters; at most {MAX_ANNOUNCEMENT_CHARS}"),
            ));
        }
        let listeners = self.notices.publish(Notice::announcement(text.to_string(), source));
        Ok(json!({ "announced": true, "chars": chars, "listeners": listeners }))
    }

    /// Re-reads the config file (see [`reload`]).
    pub async fn reload_config(&self) -> Result<Reloaded, ApiError> {
        reload::reload(self).await
    }

    /// Loads an installed model and answers once it is ready (or failed): `already` when
    /// it was loaded before.
    pub async fn load_model(&self, name: &str) -> Result<Value, ApiError> {
        let name = model_name(name)?;
        let already = self.models.is_loaded(name);
        let engine = self.models.engine(Some(name)).await.map_err(model_error)?;
        // The configured model comes back as it is (perhaps still loading): wait for it too.
        if let ModelState::Failed { error, .. } = engine.wait_loaded().await {
            return Err(ApiError::new(ErrorCode::ModelNotReady, error));
        }
        tracing::info!(model = name, already, "model loaded on request");
        Ok(json!({ "model": name, "loaded": true, "already": already }))
    }

    /// Unloads a model loaded on demand; the configured model stays (`bad_payload`).
    pub fn unload_model(&self, name: &str) -> Result<Value, ApiError> {
        let name = model_name(name)?;
        let unloaded = self.models.unload(name).map_err(model_error)?;
        Ok(json!({ "model": name, "unloaded": unloaded }))
    }
}

fn model_name(name: &str) -> Result<&str, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::new(ErrorCode::BadPayload, "model must name an installed model"));
    }
    Ok(name)
}

/// A model that is not installed is `unknown_model`; a request the registry refuses
/// (the configured model, an embedding model to chat with) is `bad_payload`.
fn model_error(e: EngineError) -> ApiError {
    match e {
        EngineError::ModelNotFound(message) => ApiError::new(ErrorCode::UnknownModel, message),
        EngineError::InvalidRequest(message) => ApiError::new(ErrorCode::BadPayload, message),
        other => other.into(),
    }
}
