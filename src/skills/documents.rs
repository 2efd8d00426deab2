//! `search_documents`: the user's own documents, searched as "Use my documents" does
//! (words and, with an embedding model, meaning), the excerpts numbered for citing.

use super::{string_arg, Context, Output, Skill, SkillError};
use crate::knowledge::Knowledge;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

pub(super) const NAME: &str = "search_documents";
/// Characters of each excerpt given to the model.
const EXCERPT_CHARS: usize = 800;

pub struct SearchDocuments {
    knowledge: Knowledge,
}

impl SearchDocuments {
    pub fn new(knowledge: Knowledge) -> Self {
        SearchDocuments { knowledge }
    }
}

impl Skill for SearchDocuments {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "Search the user's own documents (manuals, notes, recipes, letters they uploaded) \
         for facts to answer their question."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "query": { "type": "string", "description": "What to look for, in a few words" }
            },
            "required": ["query"]
        })
    }

    fn available(&self, ctx: &Context) -> bool {
        ctx.user_id.is_some()
    }

    fn execute(&self, arguments: Value, ctx: Context) -> BoxFuture<'static, Result<Output, SkillError>> {
        let knowledge = self.knowledge.clone();
        Box::pin(async move {
            let user_id = ctx.user_id.ok_or_else(|| SkillError::Failed("documents need a user".into()))?;
            let query = string_arg(&arguments, "query")?.to_string();
            let Some(found) = knowledge.retrieve(user_id, &query).await.map_err(SkillError::Failed)? else {
                return Ok(Output::json(
                    &json!({ "results": [], "note": "nothing in the documents matches" }),
                ));
            };
            let ids: Vec<i64> = found.citations.iter().map(|c| c.chunk_id).collect();
            let chunks = knowledge
                .store
                .run(move |store| store.chunks_by_ids(user_id, &ids))
                .await
                .map_err(|e| SkillError::Failed(e.to_string()))?;
            // Numbered after the excerpts the turn already cites.
            let citations: Vec<_> = found
                .citations
                .into_iter()
                .map(|c| crate::knowledge::Citation { n: c.n + ctx.cite_from - 1, ..c })
                .collect();
            let results: Vec<Value> = citations
                .iter()
                .filter_map(|c| {
                    let chunk = chunks.iter().find(|k| k.id == c.chunk_id)?;
                    let text: String = chunk.text.chars().take(EXCERPT_CHARS).collect();
                    Some(json!({ "n": c.n, "document": c.document_name, "text": text.trim() }))
                })
                .collect();
            Ok(Output { content: json!({ "results": results }).to_string(), citations })
        })
    }
}
