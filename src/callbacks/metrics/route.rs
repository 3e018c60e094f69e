//! `GET /metrics`.

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};

use super::{DeploymentState, Metrics, CONTENT_TYPE};
use crate::{auth::Admission, router::Router};

#[derive(Clone)]
struct MetricsState {
    metrics: Metrics,
    admission: Option<Admission>,
}

/// The `/metrics` route over `metrics`; with [`Metrics::requires_auth`], callers need the master
/// key or a valid virtual key (`admission`), else 401 with the OpenAI error JSON.
pub fn router(metrics: Metrics, admission: Option<Admission>) -> axum::Router {
    axum::Router::new()
        .route("/metrics", get(scrape))
        .route("/metrics/", get(scrape))
        .with_state(MetricsState { metrics, admission })
}

async fn scrape(State(st): State<MetricsState>, headers: HeaderMap) -> Response {
    if st.metrics.requires_auth() {
        if let Some(adm) = &st.admission {
            let key = crate::server::presented_key(&headers);
            if let Err(e) = adm.check(key.as_ref()).await {
                let status = e.status();
                return (
                    status,
                    [(header::CONTENT_TYPE, "application/json")],
                    e.to_json(),
                )
                    .into_response();
            }
        }
    }
    let body = st.metrics.render();
    (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

/// The router's deployments and their health, as `litellm_deployment_state` reads them.
#[must_use]
pub fn deployment_states_of(router: &Router) -> Vec<DeploymentState> {
    let mut out = Vec::new();
    for group in router.model_names() {
        for d in router.deployments(group) {
            let state = router.health(&d.id).map_or(0, |h| {
                if h.is_cooling() {
                    2
                } else if h.fails_this_minute() > 0 {
                    1
                } else {
                    0
                }
            });
            out.push(DeploymentState {
                model: d.model.clone(),
                model_id: d.id.clone(),
                api_base: d.api_base.clone(),
                provider: d.provider.clone(),
                state,
            });
        }
    }
    out
}
