//! Sampling options as a caller gives them, checked and resolved against the settings.

use super::AssistantError;
use crate::config::ModelSettings;
use crate::engine::GenerateParams;

/// The most a reply from the user's documents is sampled at when the caller gives no
/// temperature. At `model.temperature` (0.7) the default 0.5B model made up a third of
/// its document answers (issue 22); answers from documents state facts, so they are
/// sampled close to greedily unless the caller asks otherwise.
pub const DOCUMENT_TEMPERATURE: f32 = 0.2;

/// The temperature of a turn that answers from documents: the caller's, else the
/// resolved one at most [`DOCUMENT_TEMPERATURE`].
pub(super) fn documents_temperature(asked: Option<f32>, resolved: f32) -> f32 {
    asked.unwrap_or(resolved.min(DOCUMENT_TEMPERATURE))
}

/// Per-turn sampling options; `None` (or empty) takes the configured value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sampling {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    /// 0 samples from the whole vocabulary (what top_p leaves).
    pub top_k: Option<u32>,
    /// At most `model.max_tokens`, whatever is asked.
    pub max_tokens: Option<u32>,
    pub seed: Option<u32>,
    pub stop: Vec<String>,
}

impl Sampling {
    /// Checks the options and fills in the configured defaults.
    pub fn resolve(self, defaults: &ModelSettings, stream: bool) -> Result<GenerateParams, AssistantError> {
        let invalid = |message: &str| Err(AssistantError::Invalid(message.into()));
        let temperature = self.temperature.unwrap_or(defaults.temperature);
        if !(0.0..=2.0).contains(&temperature) {
            return invalid("temperature must be between 0 and 2");
        }
        let top_p = self.top_p.unwrap_or(defaults.top_p);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return invalid("top_p must be greater than 0 and at most 1");
        }
        if self.max_tokens == Some(0) {
            return invalid("max_tokens must be at least 1");
        }
        if self.stop.len() > 4 || self.stop.iter().any(|s| s.len() > 256) {
            return invalid("stop takes at most 4 strings of at most 256 bytes");
        }
        Ok(GenerateParams {
            temperature,
            top_p,
            top_k: self.top_k.unwrap_or(defaults.top_k),
            seed: self.seed,
            max_tokens: self.max_tokens.unwrap_or(defaults.max_tokens).min(defaults.max_tokens),
            stop: self.stop,
            stream,
            constraint: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_from_documents_are_sampled_cool_unless_the_caller_says() {
        assert_eq!(documents_temperature(None, 0.7), DOCUMENT_TEMPERATURE);
        assert_eq!(documents_temperature(None, 0.1), 0.1, "a cooler configuration stays");
        assert_eq!(documents_temperature(Some(0.9), 0.7), 0.9, "the caller's choice stays");
        assert_eq!(documents_temperature(Some(0.0), 0.7), 0.0);
    }

    fn defaults() -> ModelSettings {
        ModelSettings { temperature: 0.7, top_p: 0.9, top_k: 40, max_tokens: 512, ..ModelSettings::default() }
    }

    fn message(result: Result<GenerateParams, AssistantError>) -> String {
        match result {
            Err(AssistantError::Invalid(m)) => m,
            other => panic!("expected an invalid request, got {other:?}"),
        }
    }

    #[test]
    fn nothing_asked_takes_the_settings() {
        let params = Sampling::default().resolve(&defaults(), false).unwrap();
        let expected = GenerateParams {
            temperature: 0.7,
            top_p: 0.9,
            top_k: 40,
            seed: None,
            max_tokens: 512,
            stop: Vec::new(),
            stream: false,
            constraint: Default::default(),
        };
        assert_eq!(params, expected);
    }

    #[test]
    fn asked_values_win_but_max_tokens_is_capped_by_the_settings() {
        let asked = Sampling {
            temperature: Some(0.0),
            top_p: Some(1.0),
            top_k: Some(5),
            max_tokens: Some(10_000),
            seed: Some(7),
            stop: vec!["\n\n".into()],
        };
        let params = asked.resolve(&defaults(), true).unwrap();
        assert_eq!((params.temperature, params.top_p, params.top_k, params.seed), (0.0, 1.0, 5, Some(7)));
        assert_eq!(params.max_tokens, 512, "never more than model.max_tokens");
        assert_eq!(params.stop, ["\n\n"]);
        assert!(params.stream);
        let fewer = Sampling { max_tokens: Some(16), ..Sampling::default() };
        assert_eq!(fewer.resolve(&defaults(), true).unwrap().max_tokens, 16);
    }

    #[test]
    fn out_of_range_options_are_invalid_requests() {
        let resolve = |s: Sampling| s.resolve(&defaults(), true);
        let temperature = |t| Sampling { temperature: Some(t), ..Sampling::default() };
        assert_eq!(message(resolve(temperature(2.5))), "temperature must be between 0 and 2");
        assert_eq!(message(resolve(temperature(-0.1))), "temperature must be between 0 and 2");
        assert!(resolve(temperature(2.0)).is_ok());
        let top_p = |p| Sampling { top_p: Some(p), ..Sampling::default() };
        assert_eq!(message(resolve(top_p(0.0))), "top_p must be greater than 0 and at most 1");
        assert_eq!(message(resolve(top_p(1.5))), "top_p must be greater than 0 and at most 1");
        assert_eq!(message(resolve(top_p(f32::NAN))), "top_p must be greater than 0 and at most 1");
        let none = Sampling { max_tokens: Some(0), ..Sampling::default() };
        assert_eq!(message(resolve(none)), "max_tokens must be at least 1");
        let stops = |n: usize, len: usize| Sampling { stop: vec!["x".repeat(len); n], ..Sampling::default() };
        assert!(resolve(stops(4, 256)).is_ok());
        assert_eq!(message(resolve(stops(5, 1))), "stop takes at most 4 strings of at most 256 bytes");
        assert_eq!(message(resolve(stops(1, 257))), "stop takes at most 4 strings of at most 256 bytes");
    }

    #[test]
    fn a_bad_configured_default_is_caught_too() {
        let hot = ModelSettings { temperature: 3.0, ..defaults() };
        assert!(Sampling::default().resolve(&hot, true).is_err());
    }
}
