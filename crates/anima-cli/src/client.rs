//! The command-line client: login state and the commands that call the API.

use std::{io::Read, path::PathBuf};

use anima_client::{Credentials, Services, Session, connect};
use anima_proto::v1::{self as pb, auth_service_client::AuthServiceClient};
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::{commands::Changes, output};

/// Options every client command takes.
#[derive(Args, Clone)]
pub struct GlobalArgs {
    /// Server URL [default: the one logged in to, else http://127.0.0.1:7433].
    #[arg(long, env = "ANIMA_SERVER", global = true)]
    server: Option<String>,
    /// PEM file of the CA that signed an https:// server's certificate
    /// (a private CA) [default: the system's trusted roots; `anima login`
    /// remembers it].
    #[arg(long, env = "ANIMA_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// Options of `anima login`.
#[derive(Args)]
pub struct LoginArgs {
    #[command(flatten)]
    global: GlobalArgs,
    /// Account to log in as.
    #[arg(long, short)]
    username: String,
    /// Read the password from standard input instead of prompting (or
    /// from ANIMA_PASSWORD when set).
    #[arg(long)]
    password_stdin: bool,
}

/// `anima user …`
#[derive(Subcommand)]
pub enum UserCommand {
    /// List users.
    List {
        #[command(flatten)]
        global: GlobalArgs,
        /// Rows per page; all pages are fetched.
        #[arg(long, default_value_t = 100)]
        page_size: i32,
    },
    /// Show one user.
    Get {
        #[command(flatten)]
        global: GlobalArgs,
        /// User id.
        id: String,
    },
    /// Create a user. The password comes from --password-stdin or
    /// ANIMA_NEW_PASSWORD; without either a random one is generated and shown.
    Create {
        #[command(flatten)]
        global: GlobalArgs,
        /// Login name (no spaces).
        username: String,
        /// Name shown to others [default: the username].
        #[arg(long, default_value = "")]
        display_name: String,
        /// Contact address.
        #[arg(long, default_value = "")]
        email: String,
        /// Make the user a server administrator.
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change a user; only the fields given are touched.
    Update {
        #[command(flatten)]
        global: GlobalArgs,
        /// User id.
        id: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// true or false.
        #[arg(long)]
        admin: Option<bool>,
        /// true or false; disabling revokes the user's sessions.
        #[arg(long)]
        disabled: Option<bool>,
    },
    /// Delete a user.
    Delete {
        #[command(flatten)]
        global: GlobalArgs,
        /// User id.
        id: String,
    },
}

/// `anima role …`
#[derive(Subcommand)]
pub enum RoleCommand {
    /// List roles and their permissions.
    List {
        #[command(flatten)]
        global: GlobalArgs,
    },
}

const DEFAULT_SERVER: &str = "http://127.0.0.1:7433";

/// A session with the stored login (or `--server`).
pub(crate) async fn session_for(global: &GlobalArgs) -> anyhow::Result<Session> {
    let stored =
        Credentials::load()?.context("not logged in; run `anima login --username NAME`")?;
    // The stored token (and CA) belong to the stored server alone: never
    // hand the session to another.
    if let Some(server) = global.server.as_ref().filter(|s| **s != stored.server) {
        anyhow::bail!(
            "logged in to {}, not {server}; run `anima login --server {server}` first",
            stored.server
        );
    }
    let ca_cert = global.ca_cert.clone().or(stored.ca_cert);
    Session::new(
        connect(&stored.server, ca_cert.as_deref()).await?,
        &stored.token,
    )
}

fn read_stdin_line() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// `anima login`
pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let password = if args.password_stdin {
        read_stdin_line()?
    } else if let Ok(password) = std::env::var("ANIMA_PASSWORD") {
        password
    } else {
        rpassword::prompt_password(format!("password for {}: ", args.username))?
    };
    let server = args.global.server.unwrap_or_else(|| DEFAULT_SERVER.into());
    // Kept absolute, so later commands find it from any directory.
    let ca_cert = match args.global.ca_cert {
        Some(path) => Some(
            std::fs::canonicalize(&path)
                .with_context(|| format!("reading the CA certificate {}", path.display()))?,
        ),
        None => None,
    };
    let mut auth = AuthServiceClient::new(connect(&server, ca_cert.as_deref()).await?);
    let response = auth
        .login(pb::LoginRequest {
            username: args.username.clone(),
            password,
        })
        .await?
        .into_inner();
    let path = Credentials {
        server: server.clone(),
        ca_cert,
        username: args.username.clone(),
        token: response.token,
    }
    .save()?;
    println!(
        "logged in to {server} as {} (session kept in {})",
        args.username,
        path.display()
    );
    Ok(())
}

/// `anima logout`
pub async fn logout(global: GlobalArgs) -> anyhow::Result<()> {
    let session = session_for(&global).await?;
    let result = session
        .auth()
        .logout(session.request(pb::LogoutRequest {}))
        .await;
    Credentials::forget()?;
    match result {
        Ok(_) => println!("logged out"),
        Err(status) => println!(
            "forgot the local session; the server said: {}",
            status.message()
        ),
    }
    Ok(())
}

/// `anima whoami`
pub async fn whoami(global: GlobalArgs) -> anyhow::Result<()> {
    let session = session_for(&global).await?;
    let me = session.call(pb::WhoAmIRequest {}).await?;
    match (me.user, global.json) {
        (Some(user), true) => output::json(&user_json(&user)),
        (Some(user), false) => println!(
            "{} ({}){}",
            user.username,
            user.display_name,
            if user.is_admin { ", administrator" } else { "" }
        ),
        (None, _) => anyhow::bail!("the server answered without an account"),
    }
    Ok(())
}

fn user_json(user: &pb::User) -> serde_json::Value {
    json!({
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "email": user.email,
        "is_admin": user.is_admin,
        "disabled": user.disabled,
        "preferences": user.preferences,
        "created": user.create_time.as_ref().map(|t| t.to_string()),
    })
}

fn user_row(user: &pb::User) -> Vec<String> {
    vec![
        user.id.clone(),
        user.username.clone(),
        user.display_name.clone(),
        user.email.clone(),
        if user.is_admin { "yes" } else { "" }.into(),
        if user.disabled { "yes" } else { "" }.into(),
    ]
}

const USER_HEADER: &[&str] = &["ID", "USERNAME", "NAME", "EMAIL", "ADMIN", "DISABLED"];

output::impl_row!(pb::User, USER_HEADER, user_json, user_row);

fn print_user(user: &pb::User, json: bool) {
    output::one(json, user);
}

/// `anima user …`
pub async fn user(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::List { global, page_size } => {
            let session = session_for(&global).await?;
            let users = session
                .list(pb::ListUsersRequest {
                    page_size,
                    ..Default::default()
                })
                .await?;
            if global.json {
                output::json(&serde_json::Value::Array(
                    users.iter().map(user_json).collect(),
                ));
            } else {
                output::table(USER_HEADER, &users.iter().map(user_row).collect::<Vec<_>>());
            }
        }
        UserCommand::Get { global, id } => {
            let session = session_for(&global).await?;
            let user = session
                .call(pb::GetUserRequest {
                    id,
                    ..Default::default()
                })
                .await?;
            print_user(&user, global.json);
        }
        UserCommand::Create {
            global,
            username,
            display_name,
            email,
            admin,
            password_stdin,
        } => {
            let session = session_for(&global).await?;
            let (password, generated) = if password_stdin {
                (read_stdin_line()?, false)
            } else if let Ok(password) = std::env::var("ANIMA_NEW_PASSWORD") {
                (password, false)
            } else {
                (anima_core::secret::new_token(), true)
            };
            let user = session
                .call(pb::CreateUserRequest {
                    username,
                    display_name,
                    email,
                    password: password.clone(),
                    is_admin: admin,
                })
                .await?;
            print_user(&user, global.json);
            if generated {
                eprintln!("password: {password}  (shown only now)");
            }
        }
        UserCommand::Update {
            global,
            id,
            display_name,
            email,
            admin,
            disabled,
        } => {
            let session = session_for(&global).await?;
            let mut user = pb::User {
                id,
                ..Default::default()
            };
            let mut changes = Changes::default();
            changes.set("display_name", &mut user.display_name, display_name);
            changes.set("email", &mut user.email, email);
            changes.set("is_admin", &mut user.is_admin, admin);
            changes.set("disabled", &mut user.disabled, disabled);
            let update_mask = changes.mask("--display-name, --email, --admin or --disabled")?;
            let user = session
                .call(pb::UpdateUserRequest {
                    user: Some(user),
                    update_mask,
                    password: String::new(),
                })
                .await?;
            print_user(&user, global.json);
        }
        UserCommand::Delete { global, id } => {
            let session = session_for(&global).await?;
            session
                .call(pb::DeleteUserRequest { id: id.clone() })
                .await?;
            println!("deleted user {id}");
        }
    }
    Ok(())
}

/// `anima role …`
pub async fn role(command: RoleCommand) -> anyhow::Result<()> {
    let RoleCommand::List { global } = command;
    let session = session_for(&global).await?;
    let roles = session.list(pb::ListRolesRequest::default()).await?;
    if global.json {
        output::json(&serde_json::Value::Array(
            roles
                .iter()
                .map(|role| json!({"id": role.id, "name": role.name, "builtin": role.builtin, "permissions": role.permissions}))
                .collect(),
        ));
    } else {
        let rows: Vec<Vec<String>> = roles
            .iter()
            .map(|role| {
                vec![
                    role.id.clone(),
                    role.name.clone(),
                    if role.builtin { "yes" } else { "" }.into(),
                    role.permissions.join(" "),
                ]
            })
            .collect();
        output::table(&["ID", "NAME", "BUILTIN", "PERMISSIONS"], &rows);
    }
    Ok(())
}
