//! `?limit=&offset=` for list routes: 50 items by default, at most 500.

use crate::error::ApiError;
use serde::Deserialize;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    #[serde(default = "default_limit")]
    pub limit: u32,
    #[serde(default)]
    pub offset: u32,
}

fn default_limit() -> u32 {
    50
}

impl Page {
    /// The limit and offset, once checked.
    pub fn checked(&self) -> Result<(u32, u32), ApiError> {
        if !(1..=500).contains(&self.limit) {
            return Err(ApiError::invalid("limit must be between 1 and 500"));
        }
        Ok((self.limit, self.offset))
    }
}
