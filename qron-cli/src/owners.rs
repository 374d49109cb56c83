//! `qron owners`: the owners' weights in the leases' shares (the operator's setting, for every
//! executor).

use clap::Subcommand;

use crate::output::{Cell, clean};
use crate::{Failure, Global};

#[derive(Subcommand)]
pub(crate) enum Action {
    /// Lists the owners' weights that are set; the others have 1 (the default).
    List,
    /// Sets an owner's weight: its share of every lease against the others' (1 to 1,000).
    Weight {
        /// The owner.
        owner: String,
        /// Its weight: 3 gets three jobs for each one of an owner of weight 1.
        weight: u32,
    },
    /// Sets an owner's weight back to 1.
    Unweight {
        /// The owner.
        owner: String,
    },
}

pub(crate) async fn run(global: &Global, action: Option<Action>) -> Result<(), Failure> {
    let client = crate::client(global).await?;
    let out = &global.out;
    match action.unwrap_or(Action::List) {
        Action::Weight { owner, weight } => {
            client.set_owner_weight(&owner, weight).await?;
            if out.json {
                out.json_line(&serde_json::json!({ "owner": owner, "weight": weight }));
            } else {
                println!("owner {} weighs {weight}", clean(&owner));
            }
        }
        Action::Unweight { owner } => {
            let had = client.clear_owner_weight(&owner).await?;
            if out.json {
                out.json_line(&serde_json::json!({ "owner": owner, "weight": 1, "had": had }));
            } else {
                println!("owner {} weighs 1", clean(&owner));
            }
        }
        Action::List => {
            let weights = client.owner_weights().await?;
            if out.json {
                for (owner, weight) in &weights {
                    out.json_line(&serde_json::json!({ "owner": owner, "weight": weight }));
                }
                return Ok(());
            }
            let rows = weights
                .iter()
                .map(|(owner, weight)| {
                    vec![Cell::from(clean(owner)), Cell::from(weight.to_string())]
                })
                .collect();
            out.table(&["OWNER", "WEIGHT"], rows);
        }
    }
    Ok(())
}
