//! Session parameters: SET, RESET, SHOW, and the ParameterStatus messages of the reported ones.

use std::sync::PoisonError;

use pgproto::ErrorFields;

use crate::exec::Columns;
use crate::session::{Session, Side};
use crate::values::{error, Cell, PgType};

/// A session parameter.
#[derive(Debug, Clone)]
pub(crate) struct Setting {
    /// The name as PostgreSQL spells it (`TimeZone`).
    pub(crate) name: String,
    pub(crate) value: String,
    pub(crate) default: String,
    /// Sent in ParameterStatus when it changes.
    pub(crate) reported: bool,
    pub(crate) read_only: bool,
}

/// The parameters every session has: name, default, reported, read-only.
const SETTINGS: &[(&str, &str, bool, bool)] = &[
    ("application_name", "", true, false),
    ("client_encoding", "UTF8", true, false),
    ("DateStyle", "ISO, MDY", true, false),
    ("default_transaction_read_only", "off", true, false),
    ("in_hot_standby", "off", true, true),
    ("integer_datetimes", "on", true, true),
    ("IntervalStyle", "postgres", true, false),
    ("is_superuser", "off", true, true),
    ("server_encoding", "UTF8", true, true),
    ("server_version", crate::SERVER_VERSION, true, true),
    ("standard_conforming_strings", "on", true, false),
    ("TimeZone", "UTC", true, false),
    ("search_path", "\"$user\", public", false, false),
    ("statement_timeout", "0", false, false),
    ("lock_timeout", "0", false, false),
    ("idle_in_transaction_session_timeout", "0", false, false),
    ("extra_float_digits", "1", false, false),
    ("client_min_messages", "notice", false, false),
    ("transaction_isolation", "serializable", false, true),
    ("default_transaction_isolation", "serializable", false, true),
    ("max_identifier_length", "63", false, true),
    ("work_mem", "4MB", false, false),
];

impl Session {
    /// Resets every parameter to its default (the user name for session_authorization).
    pub(crate) fn reset_settings(&mut self, user: &str) {
        let mut local = self.lock();
        for (name, default, reported, read_only) in SETTINGS {
            local.settings.insert(
                name.to_lowercase(),
                Setting {
                    name: (*name).into(),
                    value: (*default).into(),
                    default: (*default).into(),
                    reported: *reported,
                    read_only: *read_only,
                },
            );
        }
        local.settings.insert(
            "session_authorization".into(),
            Setting {
                name: "session_authorization".into(),
                value: user.into(),
                default: user.into(),
                reported: true,
                read_only: true,
            },
        );
        local.settings.insert(
            "sqlite_version".into(),
            Setting {
                name: "sqlite_version".into(),
                value: rusqlite::version().into(),
                default: rusqlite::version().into(),
                reported: false,
                read_only: true,
            },
        );
    }

    pub(crate) fn reset_all(&mut self) {
        let names: Vec<String> = self
            .lock()
            .settings
            .iter()
            .filter(|(_, s)| !s.read_only && s.value != s.default)
            .map(|(k, _)| k.clone())
            .collect();
        for n in names {
            let _ = self.set(&n, None);
        }
    }

    /// SET (`None`: DEFAULT).
    pub(crate) fn set(&mut self, name: &str, value: Option<&str>) -> Result<(), ErrorFields> {
        let key = name.to_lowercase();
        let mut local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(setting) = local.settings.get_mut(&key) else {
            if !key.contains('.') {
                return Err(error(
                    "42704",
                    &format!("unrecognized configuration parameter \"{name}\""),
                ));
            }
            let value = value.unwrap_or_default().to_string();
            let custom = Setting {
                name: key.clone(),
                value,
                default: String::new(),
                reported: false,
                read_only: false,
            };
            local.settings.insert(key, custom);
            return Ok(());
        };
        if setting.read_only {
            return Err(error(
                "55P02",
                &format!("parameter \"{}\" cannot be changed", setting.name),
            ));
        }
        let mut v = value.map_or_else(|| setting.default.clone(), str::to_string);
        if key == "client_encoding" {
            if !matches!(v.to_lowercase().as_str(), "utf8" | "utf-8" | "unicode") {
                return Err(error(
                    "22023",
                    &format!("invalid value for parameter \"client_encoding\": \"{v}\" (this server speaks UTF8 only)"),
                ));
            }
            v = "UTF8".into();
        }
        setting.value = v.clone();
        if setting.reported {
            self.side.push(Side::Parameter(setting.name.clone(), v));
        }
        Ok(())
    }

    /// SHOW's columns and rows.
    pub(crate) fn show(
        &mut self,
        name: Option<&str>,
    ) -> Result<(Columns, Vec<Vec<Cell>>), ErrorFields> {
        let local = self.lock();
        let text = |s: &str| Cell::Text(s.as_bytes().to_vec());
        let Some(name) = name else {
            // The map is ordered by lower-case name, as SHOW ALL is.
            let rows: Vec<Vec<Cell>> = local
                .settings
                .values()
                .map(|s| vec![text(&s.name), text(&s.value), text("")])
                .collect();
            let columns = ["name", "setting", "description"]
                .iter()
                .map(|c| ((*c).to_string(), PgType::Text))
                .collect();
            return Ok((columns, rows));
        };
        let Some(s) = local.settings.get(&name.to_lowercase()) else {
            return Err(error(
                "42704",
                &format!("unrecognized configuration parameter \"{name}\""),
            ));
        };
        Ok((
            vec![(s.name.clone(), PgType::Text)],
            vec![vec![text(&s.value)]],
        ))
    }
}
