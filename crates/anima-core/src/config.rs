//! The configuration file, `anima.toml`: one TOML table per component
//! (`[server]`, `[ai]`, `[mail]`, `[agent]`, `[library]`), and every key
//! also as an `ANIMA_*` variable, which wins over the file.
//!
//! A variable's name follows from the key: `ANIMA_`, the section's prefix
//! ([`SECTIONS`]; none for `[server]`), then the key's path joined with
//! `_`, upper-cased: `[server] listen` is `ANIMA_LISTEN`,
//! `[server.rate_limits] uploads_per_hour` is
//! `ANIMA_RATE_LIMITS_UPLOADS_PER_HOUR`, `[ai] model_dir` is
//! `ANIMA_AI_MODEL_DIR`. The keys are read from the defaults (a section's
//! `Default`, serialized), so every key has its variable without a list to
//! keep in step. Written here rather than with a layering crate (figment,
//! config): those split variable names on a separator
//! (`ANIMA_SERVER__RATE_LIMITS__…`) and know nothing of the keys, so they
//! could not list the variables or refuse a value of the wrong type by
//! its name.
//!
//! Values are read by the default's type: text as is, numbers and
//! booleans parsed, lists comma-separated (or an inline TOML array). A
//! table whose keys are names the operator chooses (secret stores, network
//! zones, model providers) is one variable for the whole table: an inline
//! TOML table, or `name=value,…` where each entry can be written as text
//! (`ANIMA_SECRET_STORES=ci=dir:/srv/secrets`). An empty variable counts
//! as unset. The names used before `anima.toml` ([`RETIRED`]) are
//! refused with their new name, so an old setting is never silently
//! dropped.
//!
//! Errors name the file's line or the variable, never the value: a
//! configuration holds secrets, and `anima config check` prints its
//! errors.
//!
//! [`read`] is the crate's one piece of I/O: the file and the variables,
//! read once at start by every binary the same way. The rules themselves
//! ([`load`]) take the text and a lookup, so they are tested as pure
//! functions.

use std::{fmt, path::Path};

use serde::{Serialize, de::DeserializeOwned};
use toml::{Table, Value};

/// The sections of `anima.toml` and the prefix of their variables, after
/// `ANIMA_`.
pub const SECTIONS: [(&str, &str); 5] = [
    ("server", ""),
    ("ai", "AI_"),
    ("mail", "MAIL_"),
    ("agent", "AGENT_"),
    ("library", "LIBRARY_"),
];

/// Variables read before `anima.toml`, and what replaced each.
pub const RETIRED: [(&str, &str); 13] = [
    (
        "ANIMA_OUTBOUND_MAILS_PER_HOUR",
        "ANIMA_RATE_LIMITS_OUTBOUND_MAILS_PER_HOUR",
    ),
    (
        "ANIMA_UPLOADS_PER_HOUR",
        "ANIMA_RATE_LIMITS_UPLOADS_PER_HOUR",
    ),
    (
        "ANIMA_AI_CALLS_PER_HOUR",
        "ANIMA_RATE_LIMITS_AI_CALLS_PER_HOUR",
    ),
    (
        "ANIMA_MAIL_CLASSIFICATIONS_PER_HOUR",
        "ANIMA_RATE_LIMITS_MAIL_CLASSIFICATIONS_PER_HOUR",
    ),
    (
        "ANIMA_MCP_WRITES_PER_MINUTE",
        "ANIMA_RATE_LIMITS_MCP_WRITES_PER_MINUTE",
    ),
    (
        "ANIMA_OPEN_STREAMS_PER_USER",
        "ANIMA_RATE_LIMITS_OPEN_STREAMS_PER_USER",
    ),
    ("ANIMA_MAIL_TOKEN", "ANIMA_MAIL_SERVICE_TOKEN"),
    ("ANIMA_MAIL_POLL_MS", "ANIMA_MAIL_POLL_INTERVAL_MS"),
    ("ANIMA_AI_TIER_MINIMAL", "ANIMA_AI_TIERS_MINIMAL"),
    ("ANIMA_AI_TIER_STANDARD", "ANIMA_AI_TIERS_STANDARD"),
    ("ANIMA_AI_TIER_REASONING", "ANIMA_AI_TIERS_REASONING"),
    (
        "ANIMA_AI_CONFIG",
        "the [ai] section of anima.toml (--config or ANIMA_CONFIG)",
    ),
    (
        "ANIMA_MAIL_CONFIG",
        "the [mail] section of anima.toml (--config or ANIMA_CONFIG)",
    ),
];

/// Why a configuration was refused: the file or variable and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// One key the environment can set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// The key's path from the top of the file, e.g. `["server", "listen"]`.
    pub path: Vec<String>,
    /// The variable, e.g. `ANIMA_LISTEN`.
    pub name: String,
    kind: Kind,
}

/// How a variable's text becomes a value, from the default's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
    Float,
    Boolean,
    List,
    NamedTable,
}

impl Variable {
    fn parse(&self, raw: &str) -> Result<Value, ConfigError> {
        // The value is not repeated: it may be a secret.
        let refuse = |expected: &str| {
            ConfigError(format!(
                "{}: expected {expected} (key {})",
                self.name,
                self.path.join(".")
            ))
        };
        let trimmed = raw.trim();
        Ok(match self.kind {
            Kind::Text => Value::String(raw.to_owned()),
            Kind::Integer => Value::Integer(trimmed.parse().map_err(|_| refuse("a whole number"))?),
            Kind::Float => Value::Float(trimmed.parse().map_err(|_| refuse("a number"))?),
            Kind::Boolean => Value::Boolean(trimmed.parse().map_err(|_| refuse("true or false"))?),
            Kind::List if trimmed.starts_with('[') => {
                inline(trimmed).ok_or_else(|| refuse("an inline TOML array"))?
            }
            Kind::List => Value::Array(
                trimmed
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| Value::String(item.to_owned()))
                    .collect(),
            ),
            Kind::NamedTable if trimmed.starts_with('{') => {
                inline(trimmed).ok_or_else(|| refuse("an inline TOML table"))?
            }
            Kind::NamedTable => {
                let mut table = Table::new();
                for entry in trimmed.split(',').filter(|entry| !entry.trim().is_empty()) {
                    let (name, value) = entry
                        .split_once('=')
                        .ok_or_else(|| refuse("name=value,… or an inline TOML table"))?;
                    table.insert(name.trim().to_owned(), Value::String(value.trim().into()));
                }
                Value::Table(table)
            }
        })
    }
}

/// `raw` read as a TOML value, if it is one.
fn inline(raw: &str) -> Option<Value> {
    toml::from_str::<Table>(&format!("value = {raw}"))
        .ok()?
        .remove("value")
}

/// Every variable of a configuration whose defaults are `defaults`.
pub fn variables<T: Serialize>(defaults: &T) -> Result<Vec<Variable>, ConfigError> {
    let table = Table::try_from(defaults)
        .map_err(|err| ConfigError(format!("the defaults do not serialize: {err}")))?;
    let mut found = Vec::new();
    for (section, value) in &table {
        let prefix = SECTIONS
            .iter()
            .find(|(name, _)| name == section)
            .map(|(_, prefix)| *prefix)
            .ok_or_else(|| ConfigError(format!("[{section}] is not a section of anima.toml")))?;
        if let Value::Table(keys) = value {
            collect(
                keys,
                std::slice::from_ref(section),
                &format!("ANIMA_{prefix}"),
                &mut found,
            );
        }
    }
    Ok(found)
}

fn collect(table: &Table, path: &[String], prefix: &str, found: &mut Vec<Variable>) {
    for (key, value) in table {
        let mut key_path = path.to_vec();
        key_path.push(key.clone());
        let name = format!("{prefix}{}", key.to_uppercase());
        let kind = match value {
            Value::Table(inner) if !inner.is_empty() => {
                collect(inner, &key_path, &format!("{name}_"), found);
                continue;
            }
            Value::Table(_) => Kind::NamedTable,
            Value::Array(_) => Kind::List,
            Value::Integer(_) => Kind::Integer,
            Value::Float(_) => Kind::Float,
            Value::Boolean(_) => Kind::Boolean,
            Value::String(_) | Value::Datetime(_) => Kind::Text,
        };
        found.push(Variable {
            path: key_path,
            name,
            kind,
        });
    }
}

/// The configuration from the file's text (if any) and the variables that
/// `var` finds, over `T::default()`.
///
/// The file alone is read first, so its errors name its lines; unknown
/// keys are refused if `T`'s sections deny them.
pub fn load<T>(
    file: Option<(&str, &str)>,
    var: impl Fn(&str) -> Option<String>,
) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let var = |name: &str| var(name).filter(|value| !value.is_empty());
    for (old, new) in RETIRED {
        if var(old).is_some() {
            return Err(ConfigError(format!("{old} is no longer read: use {new}")));
        }
    }
    let mut table = match file {
        Some((origin, text)) => {
            let table =
                toml::from_str::<Table>(text).map_err(|err| file_error(origin, text, &err))?;
            check_sections(origin, &table)?;
            toml::from_str::<T>(text).map_err(|err| file_error(origin, text, &err))?;
            table
        }
        None => Table::new(),
    };
    let mut set = Vec::new();
    for variable in variables(&T::default())? {
        if let Some(raw) = var(&variable.name) {
            insert(&mut table, &variable.path, variable.parse(&raw)?);
            set.push(variable.name);
        }
    }
    Value::Table(table)
        .try_into()
        .map_err(|err: toml::de::Error| {
            let reason = without_values(err.message());
            ConfigError(match set.is_empty() {
                true => reason,
                false => format!("{reason} (with {})", set.join(", ")),
            })
        })
}

/// Only the known sections, as tables: a key outside them is most likely
/// a file written before `anima.toml` had sections.
fn check_sections(origin: &str, table: &Table) -> Result<(), ConfigError> {
    for (key, value) in table {
        if !value.is_table() || !SECTIONS.iter().any(|(name, _)| name == key) {
            let sections: Vec<String> = SECTIONS
                .iter()
                .map(|(name, _)| format!("[{name}]"))
                .collect();
            return Err(ConfigError(format!(
                "{origin}: `{key}` is not a section; anima.toml has {} (a key of the \
                 server, such as `listen`, goes under [server])",
                sections.join(", ")
            )));
        }
    }
    Ok(())
}

/// A file's error by its line and column, with its message stripped of
/// the values it quotes; never the line itself (it may hold a secret).
fn file_error(origin: &str, text: &str, err: &toml::de::Error) -> ConfigError {
    let at = err
        .span()
        .map(|span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(", line {line}, column {column}")
        })
        .unwrap_or_default();
    ConfigError(format!("{origin}{at}: {}", without_values(err.message())))
}

/// serde's message with every quoted value replaced: names of keys and
/// variants are quoted with backticks and stay, values with double quotes
/// and go (`invalid type: string "…"`).
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match (c, quoted) {
            ('"', false) => {
                quoted = true;
                out.push_str("\"…");
            }
            ('"', true) => {
                quoted = false;
                out.push('"');
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out
}

/// [`load`] with the file at `path` (if any) and the process's variables.
pub fn read<T>(path: Option<&Path>) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let text = path
        .map(|path| {
            std::fs::read_to_string(path)
                .map(|text| (path.display().to_string(), text))
                .map_err(|err| ConfigError(format!("reading {}: {err}", path.display())))
        })
        .transpose()?;
    load(
        text.as_ref()
            .map(|(origin, text)| (origin.as_str(), text.as_str())),
        |name| std::env::var(name).ok(),
    )
}

fn insert(table: &mut Table, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = table;
    for key in parents {
        let entry = at
            .entry(key.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        let Value::Table(inner) = entry else {
            return;
        };
        at = inner;
    }
    at.insert(last.clone(), value);
}

/// Key names whose values are secrets; [`masked`] hides them.
const SECRET_WORDS: [&str; 4] = ["token", "secret", "password", "api_key"];

/// `config` as TOML with every secret replaced by `"********"`: values of
/// keys named like a token, secret, password or API key (but not
/// `api_key_env`, which names a variable), and the password of a database
/// URL.
pub fn masked<T: Serialize>(config: &T) -> Result<String, ConfigError> {
    let mut table = Table::try_from(config)
        .map_err(|err| ConfigError(format!("the configuration does not serialize: {err}")))?;
    mask_table(&mut table);
    toml::to_string(&table)
        .map_err(|err| ConfigError(format!("the configuration does not print: {err}")))
}

fn mask_table(table: &mut Table) {
    for (key, value) in table.iter_mut() {
        let secret = !key.ends_with("_env") && SECRET_WORDS.iter().any(|word| key.contains(word));
        mask_value(value, secret);
    }
}

fn mask_value(value: &mut Value, secret: bool) {
    match value {
        Value::String(text) if secret && !text.is_empty() => *text = "********".into(),
        Value::String(text) if text.contains("://") => *text = masked_url(text),
        Value::Array(items) => items.iter_mut().for_each(|item| mask_value(item, secret)),
        // A table's own keys say what in it is secret (`service_tokens`
        // holds names and tokens).
        Value::Table(inner) => mask_table(inner),
        _ => {}
    }
}

/// A URL with its credentials masked: the user information (a password,
/// or a token given as the user) and query values named like a secret.
fn masked_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // The host follows the last `@`, as URL parsers read it.
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:********@{host}"),
            None => format!("********@{host}"),
        },
        None => authority.to_owned(),
    };
    let secret_name = |name: &str| {
        let name = name.to_lowercase();
        SECRET_WORDS.iter().any(|word| name.contains(word))
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if secret_name(name) => format!("{name}=********"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Server {
        listen: String,
        idle_secs: u64,
        tls: bool,
        domains: Vec<String>,
        database_url: String,
        token: String,
        limits: Limits,
        stores: BTreeMap<String, String>,
    }

    impl Default for Server {
        fn default() -> Self {
            Self {
                listen: "127.0.0.1:7433".into(),
                idle_secs: 60,
                tls: false,
                domains: Vec::new(),
                database_url: String::new(),
                token: String::new(),
                limits: Limits { per_hour: 5 },
                stores: BTreeMap::new(),
            }
        }
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Limits {
        per_hour: u32,
    }

    impl Default for Limits {
        fn default() -> Self {
            Self { per_hour: 5 }
        }
    }

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Ai {
        model_dir: String,
        api_key_env: String,
    }

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct File {
        server: Server,
        ai: Ai,
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        }
    }

    #[test]
    fn every_key_has_a_variable_named_by_its_section_and_path() {
        let names: Vec<String> = variables(&File::default())
            .expect("variables")
            .into_iter()
            .map(|variable| variable.name)
            .collect();
        assert_eq!(
            names,
            [
                "ANIMA_AI_API_KEY_ENV",
                "ANIMA_AI_MODEL_DIR",
                "ANIMA_DATABASE_URL",
                "ANIMA_DOMAINS",
                "ANIMA_IDLE_SECS",
                "ANIMA_LIMITS_PER_HOUR",
                "ANIMA_LISTEN",
                "ANIMA_STORES",
                "ANIMA_TLS",
                "ANIMA_TOKEN",
            ]
        );
    }

    #[test]
    fn variables_win_over_the_file_key_by_key() {
        let file = "[server]\nlisten = \"0.0.0.0:1\"\nidle_secs = 10\n[ai]\nmodel_dir = \"/m\"\n";
        let config: File = load(
            Some(("anima.toml", file)),
            env(&[
                ("ANIMA_LISTEN", "127.0.0.1:9"),
                ("ANIMA_TLS", "true"),
                ("ANIMA_DOMAINS", "a.example, b.example"),
                ("ANIMA_LIMITS_PER_HOUR", "7"),
                ("ANIMA_STORES", "ci=dir:/srv,agents=env:X_"),
            ]),
        )
        .expect("load");
        assert_eq!(config.server.listen, "127.0.0.1:9");
        assert_eq!(config.server.idle_secs, 10);
        assert!(config.server.tls);
        assert_eq!(config.server.domains, ["a.example", "b.example"]);
        assert_eq!(config.server.limits.per_hour, 7);
        assert_eq!(config.server.stores["agents"], "env:X_");
        assert_eq!(config.ai.model_dir, "/m");
    }

    #[test]
    fn inline_toml_is_read_for_lists_and_tables() {
        let config: File = load(
            None,
            env(&[
                ("ANIMA_DOMAINS", "[\"x.example\"]"),
                ("ANIMA_STORES", "{ ci = \"dir:/a\" }"),
            ]),
        )
        .expect("load");
        assert_eq!(config.server.domains, ["x.example"]);
        assert_eq!(config.server.stores["ci"], "dir:/a");
    }

    #[test]
    fn bad_values_and_unknown_keys_are_refused_by_name() {
        let err = load::<File>(None, env(&[("ANIMA_IDLE_SECS", "soon")])).expect_err("number");
        assert!(err.to_string().contains("ANIMA_IDLE_SECS"), "{err}");
        assert!(err.to_string().contains("whole number"), "{err}");
        let err = load::<File>(Some(("anima.toml", "[server]\nlisen = 1\n")), env(&[]))
            .expect_err("typo");
        assert!(err.to_string().contains("anima.toml, line 2"), "{err}");
        assert!(err.to_string().contains("lisen"), "{err}");
        let err = load::<File>(Some(("anima.toml", "[sever]\n")), env(&[])).expect_err("section");
        assert!(err.to_string().contains("sever"), "{err}");
        let err = load::<File>(Some(("anima.toml", "listen = \"x\"\n")), env(&[]))
            .expect_err("a file from before the sections");
        assert!(err.to_string().contains("[server]"), "{err}");
        let err = load::<File>(None, env(&[("ANIMA_UPLOADS_PER_HOUR", "3")])).expect_err("old");
        let expected = "use ANIMA_RATE_LIMITS_UPLOADS_PER_HOUR";
        assert!(err.to_string().contains(expected), "{err}");
    }

    /// A configuration holds secrets and its errors get printed: they
    /// name the line or the variable, never the value.
    #[test]
    fn errors_do_not_repeat_values() {
        let file = "[server]\ntoken = 12\nidle_secs = \"hunter2hunter2\"\n";
        let err = load::<File>(Some(("anima.toml", file)), env(&[])).expect_err("type");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("line "), "{err}");
        let limits = env(&[("ANIMA_LIMITS_PER_HOUR", "hunter2")]);
        let err = load::<File>(None, limits).expect_err("number");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let domains = env(&[("ANIMA_DOMAINS", "[\"hunter2\", 1]")]);
        let err = load::<File>(None, domains).expect_err("a list of text");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn secrets_are_masked_and_names_of_variables_are_not() {
        let mut config = File::default();
        config.server.token = "hunter2hunter2".into();
        config
            .server
            .stores
            .insert("ci_token".into(), "dir:/srv/tokens".into());
        config.server.database_url = "postgres://anima:pw@db/anima".into();
        config.ai.api_key_env = "OPENAI_API_KEY".into();
        let printed = masked(&config).expect("masked");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains(":pw@"), "{printed}");
        assert!(
            printed.contains("postgres://anima:********@db/anima"),
            "{printed}"
        );
        assert!(printed.contains("OPENAI_API_KEY"), "{printed}");
        assert!(printed.contains("ci_token = \"********\""), "{printed}");
    }

    #[test]
    fn credentials_in_urls_are_masked_wherever_they_are() {
        for (url, shown) in [
            ("postgres://u:p@ss@db/x", "postgres://u:********@db/x"),
            ("https://TOKEN@host/v1", "https://********@host/v1"),
            (
                "postgres://db/x?user=u&password=pw&sslmode=require",
                "postgres://db/x?user=u&password=********&sslmode=require",
            ),
            ("http://127.0.0.1:8008", "http://127.0.0.1:8008"),
        ] {
            assert_eq!(masked_url(url), shown);
        }
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let config: File = load(
            Some(("anima.toml", "[server]\nlisten = \"0.0.0.0:1\"\n")),
            env(&[("ANIMA_LISTEN", "")]),
        )
        .expect("load");
        assert_eq!(config.server.listen, "0.0.0.0:1");
    }
}
