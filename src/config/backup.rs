//! `[backup]` (scheduled backups and how many are kept) and `[retention]` (how long
//! conversations and documents are kept; users may have their own, set by an admin).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupSettings {
    /// Where archives are written (`hearth backup`, the admin API, the schedule). Empty:
    /// `<data_dir>/backups`.
    pub dir: PathBuf,
    /// How often the service makes one: a number and a unit, `s`, `m`, `h` or `d` (`1d`,
    /// `12h`). Empty: no scheduled backups.
    pub every: String,
    /// How many of the newest archives the schedule keeps (older ones are deleted).
    pub keep: u32,
}

impl Default for BackupSettings {
    fn default() -> Self {
        Self { dir: PathBuf::new(), every: String::new(), keep: 7 }
    }
}

impl BackupSettings {
    pub(super) fn validate(&self) -> Result<(), String> {
        if !self.every.is_empty() {
            crate::backup::parse_every(&self.every).map_err(|e| format!("backup.every: {e}"))?;
        }
        if self.keep == 0 {
            return Err("backup.keep: must be at least 1".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Conversations not continued for this many days are deleted (daily); 0 keeps them.
    pub conversations_days: u32,
    /// Documents added more than this many days ago are deleted (daily); 0 keeps them.
    pub documents_days: u32,
}
