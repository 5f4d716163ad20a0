//! A project's repositories: which forge holds each, and where. The
//! location comes from the remote URL people clone from, read strictly:
//! owners and names are what the forges allow, so nothing read here can
//! steer a request elsewhere on the forge's host.

use crate::{DomainError, capability::secret_reference, error::reason, planning::Actor, validate};

named_enum!(
    /// The forge a repository is on.
    ForgeKind, "forge kind" {
        /// GitHub (github.com, or GitHub Enterprise).
        GitHub = "github",
        /// Gitea (or Forgejo).
        Gitea = "gitea",
        /// GitLab.
        GitLab = "gitlab",
        /// A plain git server: no API to read.
        PlainGit = "git",
    }
);

/// Where a remote URL says a repository is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryLocation {
    /// The forge's web root: scheme, host, port and the path a
    /// self-hosted forge is served under (`https://git.example/gitea`).
    pub web_base: String,
    /// The owner: a user or organisation, or on GitLab a group path
    /// (`group/subgroup`); empty for a plain git repository at the root.
    pub owner: String,
    /// The repository's name, without `.git`.
    pub name: String,
}

impl RepositoryLocation {
    /// The root of `forge`'s API here: `api.github.com` for github.com,
    /// `/api/v3` under GitHub Enterprise, `/api/v1` under Gitea, `/api/v4`
    /// under GitLab; a plain git server has none.
    pub fn api_base(&self, forge: ForgeKind) -> Option<String> {
        match forge {
            ForgeKind::GitHub if self.web_base == "https://github.com" => {
                Some("https://api.github.com".into())
            }
            ForgeKind::GitHub => Some(format!("{}/api/v3", self.web_base)),
            ForgeKind::Gitea => Some(format!("{}/api/v1", self.web_base)),
            ForgeKind::GitLab => Some(format!("{}/api/v4", self.web_base)),
            ForgeKind::PlainGit => None,
        }
    }
}

/// A repository of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// UUIDv7.
    pub id: String,
    /// Its project.
    pub project_id: String,
    /// Its name in the project (unique there).
    pub name: String,
    /// The forge it is on.
    pub forge: ForgeKind,
    /// The URL it is cloned from, as given.
    pub remote_url: String,
    /// Where that URL says it is.
    pub location: RepositoryLocation,
    /// The branch work starts from.
    pub default_branch: String,
    /// The secret that reads it, as a reference (`STORE://KEY`, as
    /// capabilities name secrets); never the secret itself.
    pub credential: Option<String>,
    /// Who added it.
    pub created_by: Actor,
    /// Microseconds since the epoch.
    pub created_at: i64,
}

/// A repository to add, checked ([`AddRepository::checked`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRepository {
    /// Its project.
    pub project_id: String,
    /// Its name in the project.
    pub name: String,
    /// The forge it is on.
    pub forge: ForgeKind,
    /// The URL it is cloned from.
    pub remote_url: String,
    /// Where that URL says it is.
    pub location: RepositoryLocation,
    /// The branch work starts from.
    pub default_branch: String,
    /// The secret that reads it, as a reference.
    pub credential: Option<String>,
    /// Who adds it.
    pub created_by: Actor,
}

/// A request to add a repository, as someone wrote it.
#[derive(Debug, Clone, Copy)]
pub struct AddRepository<'a> {
    /// Its name in the project; empty: the repository's own name.
    pub name: &'a str,
    /// The forge it is on.
    pub forge: ForgeKind,
    /// The URL it is cloned from.
    pub remote_url: &'a str,
    /// A self-hosted forge's web root, when it is served under a path.
    pub base_url: Option<&'a str>,
    /// The branch work starts from; empty: `main`.
    pub default_branch: &'a str,
    /// The secret that reads it (`STORE://KEY`), if it needs one.
    pub credential: Option<&'a str>,
}

/// Longest remote or base URL, in characters.
pub const MAX_URL_CHARS: usize = 2_000;

impl AddRepository<'_> {
    /// The repository to add to `project_id` for `by`, once every field
    /// holds: a remote URL [`locate`] reads, a branch name git allows, a
    /// credential that is a secret reference.
    pub fn checked(&self, project_id: &str, by: Actor) -> Result<NewRepository, DomainError> {
        validate::max_chars("remote_url", self.remote_url, MAX_URL_CHARS)?;
        if let Some(base) = self.base_url {
            validate::max_chars("base_url", base, MAX_URL_CHARS)?;
        }
        let location = locate(self.forge, self.remote_url, self.base_url)?;
        let name = match self.name.trim() {
            "" => location.name.clone(),
            name => name.to_owned(),
        };
        validate::name("name", &name)?;
        if name.chars().any(|c| c.is_control() || invisible(c)) {
            return Err(DomainError::invalid_argument(
                reason::INVALID_FIELD,
                "name: control and invisible characters are not allowed",
            ));
        }
        let default_branch = match self.default_branch.trim() {
            "" => "main".to_owned(),
            branch => branch_name(branch)?.to_owned(),
        };
        let credential = match self.credential.map(str::trim).filter(|c| !c.is_empty()) {
            None => None,
            Some(reference) => match secret_reference(reference) {
                Some(_) => Some(reference.to_owned()),
                None => {
                    return Err(DomainError::invalid_argument(
                        reason::INVALID_FIELD,
                        "credential: name a secret as STORE://KEY (env://GITHUB_TOKEN, \
                         file://gitea-token), never the token itself",
                    ));
                }
            },
        };
        Ok(NewRepository {
            project_id: project_id.to_owned(),
            name,
            forge: self.forge,
            remote_url: self.remote_url.trim().to_owned(),
            location,
            default_branch,
            credential,
            created_by: by,
        })
    }
}

/// `branch` if git allows it as a branch name (`git check-ref-format
/// --branch`, less what no forge shows: no `@{`, no control characters).
fn branch_name(branch: &str) -> Result<&str, DomainError> {
    let valid = branch.len() <= 255
        && !branch.starts_with(['-', '/', '.'])
        && !branch.ends_with(['/', '.'])
        && !branch.split('/').any(|part| part.ends_with(".lock"))
        && !branch.contains("..")
        && !branch.contains("//")
        && !branch.contains("@{")
        && branch != "@"
        && !branch.split('/').any(|part| part.starts_with('.'))
        && branch.chars().all(|c| {
            !c.is_control() && !c.is_whitespace() && !invisible(c) && !"~^:?*[\\".contains(c)
        });
    match valid {
        true => Ok(branch),
        false => Err(DomainError::invalid_argument(
            reason::INVALID_FIELD,
            format!("default_branch: {branch:?} is not a branch name git allows"),
        )),
    }
}

/// Characters that change how text around them reads without showing
/// themselves: bidirectional controls, zero-width characters.
fn invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// The refusal of a remote URL, saying what one looks like.
fn bad_remote(why: &str) -> DomainError {
    DomainError::invalid_argument(
        reason::INVALID_FIELD,
        format!(
            "remote_url: {why}; write https://HOST/OWNER/NAME, ssh://git@HOST/OWNER/NAME \
             or git@HOST:OWNER/NAME"
        ),
    )
}

/// A URL's parts as this module reads them.
struct Parts<'a> {
    /// `https`, `http` or `ssh`.
    scheme: &'a str,
    /// The host, lower-cased by the caller where it compares.
    host: &'a str,
    /// The port, if the URL names one.
    port: Option<&'a str>,
    /// The path without its leading `/`.
    path: &'a str,
}

/// Splits `https://HOST[:PORT]/PATH`, `ssh://[USER@]HOST[:PORT]/PATH` or
/// `USER@HOST:PATH`.
fn parts(url: &str) -> Result<Parts<'_>, DomainError> {
    let url = url.trim();
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad_remote("it holds spaces or control characters"));
    }
    if url.contains(['?', '#']) {
        return Err(bad_remote("it holds a query or fragment"));
    }
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        // scp-like: git@host:owner/name.git
        None => match url.split_once(':') {
            Some((authority, path)) if authority.contains('@') && !authority.contains('/') => {
                let host = match authority.rsplit_once('@') {
                    Some((user, host)) => {
                        ssh_user(user)?;
                        host
                    }
                    None => authority,
                };
                return Ok(Parts {
                    scheme: "ssh",
                    host: valid_host(host)?,
                    port: None,
                    path: path.trim_start_matches('/'),
                });
            }
            _ => return Err(bad_remote("it is not a URL")),
        },
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "https" => "https",
        "http" => "http",
        "ssh" => "ssh",
        _ => return Err(bad_remote("only https, http and ssh remotes are read")),
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host_port = match authority.rsplit_once('@') {
        // A user name belongs to ssh; a password in a web URL would be
        // a credential in clear.
        Some((user, host_port)) if scheme == "ssh" => {
            ssh_user(user)?;
            host_port
        }
        Some(_) => return Err(bad_remote("it holds a user name or password")),
        None => authority,
    };
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) => {
            if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad_remote("its port is not a number"));
            }
            (host, Some(port))
        }
        None => (host_port, None),
    };
    Ok(Parts {
        scheme,
        host: valid_host(host)?,
        port,
        path,
    })
}

/// `scheme://host[:port]`, the host lower-cased.
fn origin(parts: &Parts<'_>) -> String {
    format!(
        "{}://{}{}",
        parts.scheme,
        parts.host.to_ascii_lowercase(),
        parts
            .port
            .map(|port| format!(":{port}"))
            .unwrap_or_default()
    )
}

/// An ssh user name as forges use them (`git`): no password, and nothing
/// a command line could read as an option or a shell could expand.
fn ssh_user(user: &str) -> Result<(), DomainError> {
    let valid = !user.is_empty()
        && user.len() <= 64
        && !user.starts_with('-')
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    match valid {
        true => Ok(()),
        false => Err(bad_remote("its ssh user is not a plain user name")),
    }
}

fn valid_host(host: &str) -> Result<&str, DomainError> {
    let valid = !host.is_empty()
        && host.len() <= 253
        && !host.starts_with(['.', '-'])
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    match valid {
        true => Ok(host),
        false => Err(bad_remote("its host is not a host name")),
    }
}

/// The path's segments, each as forges allow owners and names (letters,
/// digits, `.`, `_`, `-`; never `.` or `..`), without a trailing `.git`.
fn segments(path: &str) -> Result<Vec<&str>, DomainError> {
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    let valid = |segment: &&str| {
        !segment.is_empty()
            && segment.len() <= 100
            && !matches!(*segment, "." | "..")
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    match segments.iter().all(valid) {
        true => Ok(segments),
        false => Err(bad_remote(
            "an owner or name holds something other than letters, digits, '.', '_' and '-'",
        )),
    }
}

/// Where `remote_url` says a repository on `forge` is. `base_url` names a
/// self-hosted forge's web root when it is served under a path
/// (`https://git.example/gitea`): an https remote must lie under it, an
/// ssh remote must be on its host.
pub fn locate(
    forge: ForgeKind,
    remote_url: &str,
    base_url: Option<&str>,
) -> Result<RepositoryLocation, DomainError> {
    let remote = parts(remote_url)?;
    let (web_base, path) = match base_url.map(str::trim).filter(|base| !base.is_empty()) {
        None => {
            let web_base = match (remote.scheme, remote.port) {
                // An ssh port says nothing of the web's.
                ("ssh", _) | (_, None) => format!(
                    "{}://{}",
                    if remote.scheme == "http" {
                        "http"
                    } else {
                        "https"
                    },
                    remote.host.to_ascii_lowercase()
                ),
                (scheme, Some(port)) => {
                    format!("{scheme}://{}:{port}", remote.host.to_ascii_lowercase())
                }
            };
            (web_base, remote.path.to_owned())
        }
        Some(base) => {
            let bad_base = |why: &str| {
                DomainError::invalid_argument(
                    reason::INVALID_FIELD,
                    format!("base_url: {why}; write https://HOST[/PREFIX]"),
                )
            };
            let base = match parts(base) {
                Ok(base) if base.scheme != "ssh" => base,
                _ => return Err(bad_base("it is not a web URL")),
            };
            let prefix = match base.path.trim_end_matches('/') {
                "" => Vec::new(),
                prefix => segments(prefix).map_err(|_| bad_base("its path is not a plain path"))?,
            };
            let web_base = format!(
                "{}{}",
                origin(&base),
                prefix
                    .iter()
                    .map(|segment| format!("/{segment}"))
                    .collect::<String>()
            );
            if !remote.host.eq_ignore_ascii_case(base.host) {
                return Err(bad_remote("it is not on base_url's host"));
            }
            let path = match remote.scheme {
                // Forges serve ssh at the host's root, whatever their web
                // prefix.
                "ssh" => remote.path.to_owned(),
                _ => {
                    let mut rest = remote.path.trim_matches('/').split('/');
                    let under = origin(&remote) == origin(&base)
                        && prefix.iter().all(|segment| rest.next() == Some(*segment));
                    if !under {
                        return Err(bad_remote("it is not under base_url"));
                    }
                    rest.collect::<Vec<_>>().join("/")
                }
            };
            (web_base, path)
        }
    };
    let segments = segments(&path)?;
    let (owner, name) = match (forge, segments.as_slice()) {
        (ForgeKind::GitHub | ForgeKind::Gitea, [owner, name]) => (owner.to_string(), *name),
        (ForgeKind::GitHub | ForgeKind::Gitea, _) => {
            return Err(bad_remote("it names no OWNER/NAME"));
        }
        (ForgeKind::GitLab, [owners @ .., name]) if !owners.is_empty() => (owners.join("/"), *name),
        (ForgeKind::GitLab, _) => return Err(bad_remote("it names no GROUP/NAME")),
        (ForgeKind::PlainGit, [owners @ .., name]) => (owners.join("/"), *name),
        (ForgeKind::PlainGit, []) => return Err(bad_remote("it names no repository")),
    };
    Ok(RepositoryLocation {
        web_base,
        owner,
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn located(forge: ForgeKind, remote: &str, base: Option<&str>) -> (String, String, String) {
        let location =
            locate(forge, remote, base).unwrap_or_else(|error| panic!("{remote}: {error}"));
        (location.web_base, location.owner, location.name)
    }

    fn triple(web: &str, owner: &str, name: &str) -> (String, String, String) {
        (web.into(), owner.into(), name.into())
    }

    #[test]
    fn remotes_of_every_form_name_their_owner_and_name() {
        let github = triple("https://github.com", "octocat", "Hello-World");
        for remote in [
            "https://github.com/octocat/Hello-World",
            "https://github.com/octocat/Hello-World.git",
            "https://GitHub.com/octocat/Hello-World/",
            "git@github.com:octocat/Hello-World.git",
            "ssh://git@github.com/octocat/Hello-World.git",
            "ssh://git@github.com:22/octocat/Hello-World",
        ] {
            assert_eq!(located(ForgeKind::GitHub, remote, None), github, "{remote}");
        }
        assert_eq!(
            located(
                ForgeKind::GitLab,
                "https://gitlab.com/group/sub/project.git",
                None
            ),
            triple("https://gitlab.com", "group/sub", "project")
        );
        assert_eq!(
            located(ForgeKind::Gitea, "http://git.lan:3000/team/shop", None),
            triple("http://git.lan:3000", "team", "shop")
        );
        assert_eq!(
            located(ForgeKind::PlainGit, "ssh://git@host.example/shop.git", None),
            triple("https://host.example", "", "shop")
        );
    }

    #[test]
    fn a_forge_under_a_path_is_named_by_its_base_url() {
        let gitea = triple("https://git.example/gitea", "team", "shop");
        for remote in [
            "https://git.example/gitea/team/shop.git",
            "git@git.example:team/shop.git",
        ] {
            assert_eq!(
                located(ForgeKind::Gitea, remote, Some("https://git.example/gitea/")),
                gitea,
                "{remote}"
            );
        }
        for (remote, base) in [
            (
                "https://git.example/other/team/shop",
                "https://git.example/gitea",
            ),
            (
                "https://elsewhere.example/gitea/team/shop",
                "https://git.example/gitea",
            ),
            (
                "git@elsewhere.example:team/shop.git",
                "https://git.example/gitea",
            ),
            (
                "https://git.example/gitea/team/shop",
                "ssh://git.example/gitea",
            ),
            (
                "https://git.example/gitea/team/shop",
                "https://git.example/../x",
            ),
            (
                "https://git.example:8443/gitea/team/shop",
                "https://git.example/gitea",
            ),
        ] {
            let refused = locate(ForgeKind::Gitea, remote, Some(base)).expect_err(remote);
            assert_eq!(
                refused.reason,
                reason::INVALID_FIELD,
                "{remote} under {base}"
            );
        }
    }

    #[test]
    fn remotes_that_could_steer_a_request_are_refused() {
        for remote in [
            "",
            "file:///srv/git/shop.git",
            "ftp://host/a/b",
            "https://github.com/octocat",
            "https://github.com/a/b/c",
            "https://github.com/../b",
            "https://github.com/a/..",
            "https://github.com/a/%2e%2e",
            "https://github.com/a/b?x=1",
            "https://github.com/a/b#top",
            "https://user:secret@github.com/a/b",
            "https://github.com:99999x/a/b",
            "https://-github.com/a/b",
            "https://github.com/a b/c",
            "https://github.com/a\n/b",
            "github.com/a/b",
            "https://github.com//b",
            "ssh://user:secret@github.com/a/b",
            "ssh://-oProxyCommand=x@github.com/a/b",
            "$(id)@github.com:a/b",
        ] {
            let refused = locate(ForgeKind::GitHub, remote, None).expect_err(remote);
            assert_eq!(refused.reason, reason::INVALID_FIELD, "{remote:?}");
        }
        let refused = locate(ForgeKind::GitLab, "https://gitlab.com/project", None);
        assert!(refused.is_err(), "a GitLab project lives in a group");
    }

    fn add<'a>(remote_url: &'a str) -> AddRepository<'a> {
        AddRepository {
            name: "",
            forge: ForgeKind::GitHub,
            remote_url,
            base_url: None,
            default_branch: "",
            credential: None,
        }
    }

    fn by() -> Actor {
        Actor::User { id: "u".into() }
    }

    #[test]
    fn a_repository_to_add_gets_sensible_defaults() {
        let new = add(" https://github.com/octocat/Hello-World.git ")
            .checked("p", by())
            .expect("checked");
        assert_eq!(new.name, "Hello-World");
        assert_eq!(new.default_branch, "main");
        assert_eq!(new.remote_url, "https://github.com/octocat/Hello-World.git");
        assert_eq!(new.credential, None);
        let named = AddRepository {
            name: "Shop backend",
            default_branch: "release/2.x",
            credential: Some("env://GITHUB_TOKEN"),
            ..add("git@github.com:team/shop.git")
        }
        .checked("p", by())
        .expect("checked");
        assert_eq!(
            (named.name.as_str(), named.default_branch.as_str()),
            ("Shop backend", "release/2.x")
        );
        assert_eq!(named.credential.as_deref(), Some("env://GITHUB_TOKEN"));
    }

    #[test]
    fn bad_branches_and_tokens_in_clear_are_refused() {
        for branch in [
            "-rf",
            "a..b",
            "a b",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[",
            "a\\b",
            "a/",
            "/a",
            "a.lock",
            "@",
            "a@{1}",
            ".hidden",
            "a/.b",
            "a//b",
            "a.",
            "a.lock/b",
            "main\u{202E}",
        ] {
            let refused = AddRepository {
                default_branch: branch,
                ..add("https://github.com/a/b")
            }
            .checked("p", by())
            .expect_err(branch);
            assert_eq!(refused.reason, reason::INVALID_FIELD, "{branch:?}");
        }
        for credential in [
            "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
            "env://",
            "env://a/b",
        ] {
            let refused = AddRepository {
                credential: Some(credential),
                ..add("https://github.com/a/b")
            }
            .checked("p", by())
            .expect_err(credential);
            assert_eq!(refused.reason, reason::INVALID_FIELD, "{credential}");
            assert!(!refused.message.contains(credential) || credential.contains("://"));
        }
        let long = format!("https://github.com/a/{}", "b".repeat(MAX_URL_CHARS));
        assert_eq!(
            add(&long).checked("p", by()).expect_err("long").reason,
            reason::FIELD_TOO_LONG
        );
    }

    #[test]
    fn each_forge_has_its_api_where_it_says() {
        let api = |forge, remote: &str| locate(forge, remote, None).expect(remote).api_base(forge);
        assert_eq!(
            api(ForgeKind::GitHub, "https://github.com/a/b").as_deref(),
            Some("https://api.github.com")
        );
        assert_eq!(
            api(ForgeKind::GitHub, "https://ghe.example/a/b").as_deref(),
            Some("https://ghe.example/api/v3")
        );
        assert_eq!(
            api(ForgeKind::Gitea, "git@git.example:a/b.git").as_deref(),
            Some("https://git.example/api/v1")
        );
        assert_eq!(
            api(ForgeKind::GitLab, "https://gitlab.com/g/s/p").as_deref(),
            Some("https://gitlab.com/api/v4")
        );
        assert_eq!(api(ForgeKind::PlainGit, "https://host/a/b"), None);
        let prefixed = locate(
            ForgeKind::GitLab,
            "https://h.example/gl/g/p",
            Some("https://h.example/gl"),
        )
        .expect("prefixed");
        assert_eq!(
            prefixed.api_base(ForgeKind::GitLab).as_deref(),
            Some("https://h.example/gl/api/v4")
        );
    }
}
