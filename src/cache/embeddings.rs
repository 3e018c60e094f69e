//! Embeddings batches: only the inputs the cache did not have go upstream, and the answer is
//! reassembled in the original order.

use std::sync::Arc;

use serde_json::value::RawValue;

use super::{
    entry,
    service::{Plan, PlanKind},
    stats::WriteOp,
};
use crate::{
    error::LlmError,
    types::{
        embeddings::{
            Embedding, EmbeddingInput, EmbeddingsRequest, EmbeddingsResponse, EmbeddingsUsage,
        },
        LlmRequest, LlmResponse, Operation, ResponseBody,
    },
};

/// The request for the items the cache did not have, in their original order.
pub(super) fn missing_only(plan: &Plan, mut req: LlmRequest) -> LlmRequest {
    let PlanKind::Embeddings { hits, .. } = &plan.kind else {
        return req;
    };
    if let Operation::Embeddings(body) = &req.op {
        let missing = |i: usize| hits.get(i).is_some_and(Option::is_none);
        let input = match &body.input {
            EmbeddingInput::Many(v) => EmbeddingInput::Many(
                v.iter()
                    .enumerate()
                    .filter(|(i, _)| missing(*i))
                    .map(|(_, s)| s.clone())
                    .collect(),
            ),
            EmbeddingInput::TokenBatches(v) => EmbeddingInput::TokenBatches(
                v.iter()
                    .enumerate()
                    .filter(|(i, _)| missing(*i))
                    .map(|(_, t)| t.clone())
                    .collect(),
            ),
            // A single input is all hit or all miss; never split.
            other => other.clone(),
        };
        let sub = EmbeddingsRequest {
            input,
            ..EmbeddingsRequest::clone(body)
        };
        req.op = Operation::Embeddings(Arc::new(sub));
    }
    req
}

pub(super) fn embeddings_from_cache(plan: &Plan) -> LlmResponse {
    let PlanKind::Embeddings { hits, .. } = &plan.kind else {
        return LlmResponse::embeddings(EmbeddingsResponse::default());
    };
    let mut tokens = 0;
    let mut model = None;
    let data = hits
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let h = h.as_ref()?;
            tokens += h.tokens;
            if model.is_none() {
                model.clone_from(&h.model);
            }
            Some(embedding(i, h.vector.clone()))
        })
        .collect();
    LlmResponse {
        body: ResponseBody::Embeddings(Box::new(EmbeddingsResponse {
            data,
            object: Some("list".to_owned()),
            model,
            usage: Some(EmbeddingsUsage {
                prompt_tokens: Some(tokens),
                total_tokens: Some(tokens),
                ..EmbeddingsUsage::default()
            }),
            ..EmbeddingsResponse::default()
        })),
        meta: Box::new(plan.hit_meta()),
    }
}

fn embedding(index: usize, vector: Box<RawValue>) -> Embedding {
    Embedding {
        object: Some("embedding".to_owned()),
        index: Some(u32::try_from(index).unwrap_or(u32::MAX)),
        embedding: Some(vector),
        ..Embedding::default()
    }
}

pub(super) fn embeddings_answer(
    plan: &Plan,
    mut resp: LlmResponse,
) -> Result<LlmResponse, LlmError> {
    let PlanKind::Embeddings {
        keys,
        weights,
        hits,
        bypass,
    } = &plan.kind
    else {
        return Ok(resp);
    };
    let ResponseBody::Embeddings(upstream) = &mut resp.body else {
        return Ok(resp);
    };
    let missing: Vec<usize> = (0..keys.len())
        .filter(|i| hits.get(*i).is_none_or(Option::is_none))
        .collect();
    let partial = missing.len() < keys.len();
    // Upstream data by its `index` (position in the sub-request), else by position.
    let mut fresh: Vec<Option<Box<RawValue>>> = vec![None; missing.len()];
    for (pos, e) in upstream.data.iter_mut().enumerate() {
        let at = e.index.map_or(pos, |i| i as usize);
        if let (Some(slot), Some(v)) = (fresh.get_mut(at), e.embedding.take()) {
            *slot = Some(v);
        }
    }
    if fresh.iter().any(Option::is_none) || upstream.data.len() != missing.len() {
        if partial {
            return Err(LlmError::internal(format!(
                "the provider returned {} embeddings for {} inputs",
                upstream.data.len(),
                missing.len()
            )));
        }
        // Put back what was taken and pass the answer on unchanged (nothing stored).
        for (pos, e) in upstream.data.iter_mut().enumerate() {
            let at = e.index.map_or(pos, |i| i as usize);
            if let Some(v) = fresh.get_mut(at).and_then(Option::take) {
                e.embedding = Some(v);
            }
        }
        plan.meta_headers(&mut resp.meta, if *bypass { "bypass" } else { "miss" });
        return Ok(resp);
    }
    let fresh: Vec<Box<RawValue>> = fresh.into_iter().flatten().collect();

    // Share the batch's prompt tokens among the new items by their length.
    let paid = upstream.usage.as_ref().and_then(|u| u.prompt_tokens);
    let item_tokens = share(paid.unwrap_or(0), missing.iter().map(|i| weights[*i]));
    if plan.store() {
        let ttl = plan.ttl();
        let model = upstream.model.as_deref();
        let now = entry::now_ms(&plan.settings.clock);
        let writes: Vec<_> = missing
            .iter()
            .zip(&fresh)
            .zip(&item_tokens)
            .filter_map(|((i, v), tok)| {
                let bytes = entry::encode_embedding(v, *tok, model, ttl, now)?;
                (bytes.len() <= plan.settings.max_entry_bytes)
                    .then(|| (keys[*i].clone(), bytes, ttl))
            })
            .collect();
        if !writes.is_empty() {
            plan.shared.write(WriteOp::Set(writes));
        }
    }

    // Reassemble in the original order.
    let mut fresh = fresh.into_iter();
    let mut tokens = 0;
    let data = (0..keys.len())
        .map(|i| match hits.get(i).and_then(Option::as_ref) {
            Some(h) => {
                tokens += h.tokens;
                embedding(i, h.vector.clone())
            }
            None => embedding(i, fresh.next().unwrap_or_else(null_raw)),
        })
        .collect();
    tokens += paid.unwrap_or(0);
    upstream.data = data;
    if partial {
        upstream.usage = Some(EmbeddingsUsage {
            prompt_tokens: Some(tokens),
            total_tokens: Some(tokens),
            ..EmbeddingsUsage::default()
        });
    }
    let label = match (partial, *bypass) {
        (true, _) => "partial",
        (false, true) => "bypass",
        (false, false) => "miss",
    };
    plan.meta_headers(&mut resp.meta, label);
    Ok(resp)
}

fn null_raw() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).unwrap_or_else(|_| Box::<RawValue>::default())
}

/// Splits `total` into parts proportional to `weights`, summing exactly to `total`.
fn share(total: u64, weights: impl Iterator<Item = u64> + Clone) -> Vec<u64> {
    let sum: u64 = weights.clone().sum::<u64>().max(1);
    let mut out: Vec<u64> = weights
        .map(|w| ((u128::from(total) * u128::from(w)) / u128::from(sum)) as u64)
        .collect();
    let given: u64 = out.iter().sum();
    if let Some(last) = out.last_mut() {
        *last += total.saturating_sub(given);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_sums_exactly() {
        assert_eq!(share(10, [1, 1, 1].into_iter()), vec![3, 3, 4]);
        assert_eq!(share(0, [5, 1].into_iter()), vec![0, 0]);
        assert_eq!(share(7, [0, 0].into_iter()), vec![0, 7]);
    }
}
