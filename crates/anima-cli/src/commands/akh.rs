//! `anima akh …`: Akh personas.

use anima_proto::v1 as pb;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::{
    client::{GlobalArgs, session_for},
    output,
};

use super::Changes;

/// `anima akh …`
#[derive(Subcommand)]
pub enum AkhCommand {
    /// List the Akh personas.
    List {
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// Create an Akh (server administrators).
    Create {
        #[command(flatten)]
        global: GlobalArgs,
        /// Unique name.
        name: String,
        /// Its voice: how it writes.
        #[arg(long, default_value = "")]
        description: String,
        /// Avatar colour as #rrggbb.
        #[arg(long, default_value = "")]
        color: String,
    },
    /// Change an Akh (server administrators).
    Update {
        #[command(flatten)]
        global: GlobalArgs,
        /// Akh id.
        akh: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        color: Option<String>,
    },
    /// Delete an Akh (server administrators).
    Delete {
        #[command(flatten)]
        global: GlobalArgs,
        /// Akh id.
        akh: String,
    },
}

fn akh_json(akh: &pb::Akh) -> Value {
    json!({
        "id": akh.id,
        "name": akh.name,
        "description": akh.description,
        "avatar_color": akh.avatar_color,
    })
}

fn akh_row(akh: &pb::Akh) -> Vec<String> {
    vec![
        akh.id.clone(),
        akh.name.clone(),
        akh.avatar_color.clone(),
        akh.description.lines().next().unwrap_or_default().into(),
    ]
}

const AKH_HEADER: &[&str] = &["ID", "NAME", "COLOR", "VOICE"];

output::impl_row!(pb::Akh, AKH_HEADER, akh_json, akh_row);

fn print_akh(akh: &pb::Akh, json: bool) {
    output::one(json, akh);
}

/// `anima akh …`
pub async fn akh(command: AkhCommand) -> anyhow::Result<()> {
    match command {
        AkhCommand::List { global } => {
            let session = session_for(&global).await?;
            let akhs = session.list(pb::ListAkhsRequest::default()).await?;
            output::list(global.json, &akhs);
        }
        AkhCommand::Create {
            global,
            name,
            description,
            color,
        } => {
            let session = session_for(&global).await?;
            let akh = session
                .call(pb::CreateAkhRequest {
                    name,
                    description,
                    avatar_color: color,
                })
                .await?;
            print_akh(&akh, global.json);
        }
        AkhCommand::Update {
            global,
            akh,
            name,
            description,
            color,
        } => {
            let session = session_for(&global).await?;
            let mut wanted = pb::Akh {
                id: akh,
                ..Default::default()
            };
            let mut changes = Changes::default();
            changes.set("name", &mut wanted.name, name);
            changes.set("description", &mut wanted.description, description);
            changes.set("avatar_color", &mut wanted.avatar_color, color);
            let update_mask = changes.mask("--name, --description or --color")?;
            let akh = session
                .call(pb::UpdateAkhRequest {
                    akh: Some(wanted),
                    update_mask,
                })
                .await?;
            print_akh(&akh, global.json);
        }
        AkhCommand::Delete { global, akh } => {
            let session = session_for(&global).await?;
            session
                .call(pb::DeleteAkhRequest { id: akh.clone() })
                .await?;
            println!("deleted Akh {akh}");
        }
    }
    Ok(())
}
