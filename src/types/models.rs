//! `GET /v1/models` wire types.

use serde::{Deserialize, Serialize};

/// The model list (`object: "list"`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelList {
    /// `list`.
    pub object: String,
    /// The models.
    pub data: Vec<ModelObject>,
}

/// One model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelObject {
    /// The model group name a client sends as `model`.
    pub id: String,
    /// `model`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// Owner.
    pub owned_by: String,
}

impl ModelList {
    /// A list of model ids.
    #[must_use]
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(ids: I, created: u64) -> Self {
        Self {
            object: "list".into(),
            data: ids
                .into_iter()
                .map(|id| ModelObject {
                    id: id.into(),
                    object: "model".into(),
                    created,
                    owned_by: "openai".into(),
                })
                .collect(),
        }
    }
}
