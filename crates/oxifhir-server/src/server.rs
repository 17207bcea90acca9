//! [`FhirServer`]: the `dispatch` every request goes through, synchronous or not.

use std::sync::Arc;

use futures::future::BoxFuture;
use oxifhir_model::resource_type::ASYNC_JOB;
use oxifhir_store::Store;

use crate::asynchronous::{self, AsyncConfig, PollTracker};
use crate::auth::{self, AuthMode};
use crate::bundle;
use crate::config::ServerConfig;
use crate::error::{ApiError, ApiResult};
use crate::format;
use crate::interactions;
use crate::observability::metrics::Metrics;
use crate::operations;
use crate::operations::export::files::ExportFiles;
use crate::prefer::Preferences;
use crate::request::{FhirRequest, Method};
use crate::response::FhirResponse;
use crate::route::{self, Interaction};
use crate::search_params::{Registry, SearchParams};

/// The FHIR API over one store. Cheap to clone.
#[derive(Clone)]
pub struct FhirServer {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    config: ServerConfig,
    polls: PollTracker,
    rates: asynchronous::rate::ClientRates,
    auth: AuthMode,
    /// The store of export files, or why it cannot be used.
    export_files: Result<ExportFiles, String>,
    search_params: Registry,
    metrics: Arc<Metrics>,
}

/// Every job kind this server registers ([`FhirServer::job_runtime`]).
pub(crate) const JOB_KINDS: [&str; 4] = [
    asynchronous::INTERACTION_KIND,
    operations::export::KIND,
    operations::reindex::KIND,
    operations::expunge::KIND,
];

impl FhirServer {
    /// A server answering from `store`.
    pub fn new(store: Arc<dyn Store>, config: ServerConfig) -> Self {
        FhirServer {
            inner: Arc::new(Inner {
                export_files: ExportFiles::open(&config.export.location),
                search_params: Registry::new(&config.base_url),
                store,
                config,
                polls: PollTracker::default(),
                rates: Default::default(),
                auth: AuthMode::None,
                metrics: Arc::new(Metrics::new()),
            }),
        }
    }

    /// The same server with authentication `auth` (`--auth`).
    pub fn with_auth(self, auth: AuthMode) -> Self {
        FhirServer {
            inner: Arc::new(Inner {
                store: Arc::clone(&self.inner.store),
                config: self.inner.config.clone(),
                polls: PollTracker::default(),
                rates: Default::default(),
                auth,
                export_files: ExportFiles::open(&self.inner.config.export.location),
                search_params: Registry::new(&self.inner.config.base_url),
                metrics: Arc::clone(&self.inner.metrics),
            }),
        }
    }

    /// The metrics of this process (`GET /metrics`).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// How requests are authenticated and authorized.
    pub fn auth(&self) -> &AuthMode {
        &self.inner.auth
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    /// The store, shared (for job runtimes).
    pub fn shared_store(&self) -> Arc<dyn Store> {
        self.inner.store.clone()
    }

    /// Settings of the asynchronous pattern.
    pub fn async_config(&self) -> &AsyncConfig {
        &self.inner.config.asynchronous
    }

    /// Recent polls of status URLs on this node.
    pub(crate) fn polls(&self) -> &PollTracker {
        &self.inner.polls
    }

    /// Per-client rate limits of kick-offs and polls on this node.
    pub(crate) fn rates(&self) -> &asynchronous::rate::ClientRates {
        &self.inner.rates
    }

    /// The job runtime of this server: every job kind registered (as [`JOB_KINDS`] lists),
    /// jobs' ends recorded in its metrics; not started.
    pub fn job_runtime(&self, config: oxifhir_jobs::RuntimeConfig) -> oxifhir_jobs::JobRuntime {
        let mut runtime = oxifhir_jobs::JobRuntime::new(self.shared_store(), config);
        runtime.observe(self.inner.metrics.clone());
        runtime.register(
            asynchronous::INTERACTION_KIND,
            Arc::new(asynchronous::interaction_job::InteractionJob::new(
                self.clone(),
            )),
        );
        runtime.register(
            operations::reindex::KIND,
            Arc::new(operations::reindex::job::ReindexJob::new(self.clone())),
        );
        runtime.register(
            operations::expunge::KIND,
            Arc::new(operations::expunge::job::ExpungeJob::new(self.clone())),
        );
        runtime.register(
            operations::export::KIND,
            Arc::new(operations::export::job::ExportJob::new(self.clone())),
        );
        runtime
    }

    /// The store of export files (`500` when it could not be opened).
    pub fn export_files(&self) -> ApiResult<&ExportFiles> {
        self.inner
            .export_files
            .as_ref()
            .map_err(|e| ApiError::internal(format!("the export store is unusable: {e}")))
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// `{base}/{relative}`.
    pub fn url(&self, relative: &str) -> String {
        self.inner.config.url(relative)
    }

    /// The search parameters in force: R4 plus the active custom ones (reloaded when the
    /// snapshot is older than [`crate::search_params::REFRESH_AFTER`]).
    pub async fn search_params(&self) -> ApiResult<Arc<SearchParams>> {
        self.inner.search_params.get(self.store()).await
    }

    /// Loads the custom search parameters now (at start, so that a bad database shows early).
    pub async fn load_search_params(&self) -> ApiResult<Arc<SearchParams>> {
        self.inner.search_params.reload(self.store()).await
    }

    /// Marks the custom search parameter `url` as indexed for every stored resource: the
    /// hook `$reindex` calls once it has re-extracted ([`crate::repository::reindex`]) every
    /// resource of the parameter's types. Searches on it stop warning. `false` when no
    /// active custom parameter has that url.
    pub async fn mark_search_param_indexed(&self, url: &str) -> ApiResult<bool> {
        self.inner
            .search_params
            .mark_indexed(self.store(), url)
            .await
    }

    /// As [`FhirServer::mark_search_param_indexed`], only if the parameter is still defined
    /// as `fingerprint` says (it did not change while `$reindex` ran).
    pub async fn mark_search_param_indexed_as(
        &self,
        url: &str,
        fingerprint: &str,
    ) -> ApiResult<bool> {
        self.inner
            .search_params
            .mark_indexed_as(self.store(), url, fingerprint)
            .await
    }

    /// Answers one request: the complete response, formatted as the request asked, errors
    /// included as `OperationOutcome`s. The same for every caller, so an asynchronous result
    /// equals the synchronous response.
    pub async fn dispatch(&self, request: FhirRequest) -> FhirResponse {
        let format = match format::negotiate(&request) {
            Ok(format) => format,
            Err(error) => {
                return format::apply(FhirResponse::from_error(&error), Default::default());
            }
        };
        let mut response = match self.handle(&request).await {
            Ok(response) => response,
            Err(error) => FhirResponse::from_error(&error),
        };
        response = format::apply(response, format);
        if request.method == Method::Head {
            response.body.clear();
        }
        response
    }

    /// Runs the interaction of `request` (used by `dispatch` and by batch entries).
    pub(crate) fn handle<'a>(
        &'a self,
        request: &'a FhirRequest,
    ) -> BoxFuture<'a, ApiResult<FhirResponse>> {
        Box::pin(async move {
            let prefs = Preferences::parse(request.headers.prefer.as_deref());
            let interaction = route::route(request)?;
            auth::authorize(
                self.auth(),
                request.principal.as_ref(),
                request,
                &interaction,
            )?;
            let writes_search_parameters = writes_search_parameters(request, &interaction);
            let response = self.run(request, prefs, interaction).await?;
            if writes_search_parameters
                && response.status < 300
                && let Err(e) = self.inner.search_params.changed(self.store()).await
            {
                // The write stands; the next refresh picks the change up.
                tracing::warn!(error = %e.message(), "reloading search parameters failed");
            }
            Ok(response)
        })
    }

    async fn run(
        &self,
        request: &FhirRequest,
        prefs: Preferences,
        interaction: Interaction,
    ) -> ApiResult<FhirResponse> {
        use Interaction as I;
        let ctx = interactions::Context {
            server: self,
            request,
            prefs,
        };
        let async_endpoint = matches!(
            interaction,
            I::AsyncStatus { .. } | I::AsyncResult { .. } | I::ExportPollStatus
        );
        if ctx.prefs.respond_async && !async_endpoint {
            return asynchronous::kickoff::kickoff(&ctx, &interaction).await;
        }
        if let I::Operation { name, target } = &interaction {
            let def = operations::find(name, target)?;
            if (def.async_use)(target, request) == operations::AsyncUse::Required {
                return Err(ApiError::bad_request(format!(
                    "Operation ${name} requires \"Prefer: respond-async\""
                )));
            }
        }
        match interaction {
            I::AsyncStatus { id } => asynchronous::status::status(&ctx, &id).await,
            I::AsyncResult { id } => asynchronous::status::result(&ctx, &id).await,
            I::ExportPollStatus => asynchronous::status::export_poll_status(&ctx).await,
            I::Read { resource_type, id } if resource_type == ASYNC_JOB => {
                asynchronous::async_job::read(&ctx, &id).await
            }
            I::Read { resource_type, id }
                if resource_type == "OperationDefinition"
                    && operations::definition::by_id(&id).is_some() =>
            {
                operations::definition::read(&id)
            }
            I::SearchType { resource_type } if resource_type == ASYNC_JOB => {
                asynchronous::async_job::search(&ctx).await
            }
            I::VRead { resource_type, .. }
            | I::HistoryInstance { resource_type, .. }
            | I::HistoryType { resource_type }
                if resource_type == ASYNC_JOB =>
            {
                Err(ApiError::not_supported(
                    "AsyncJob keeps no history; read it at AsyncJob/{id}",
                ))
            }
            I::Capabilities => interactions::capabilities::capability_statement(&ctx).await,
            I::BatchOrTransaction => bundle::process(&ctx).await,
            I::SearchSystem => interactions::search::search(&ctx, None).await,
            I::SearchType { resource_type } => {
                interactions::search::search(&ctx, Some(&resource_type)).await
            }
            I::HistorySystem | I::HistoryType { .. } | I::HistoryInstance { .. } => {
                interactions::history::history(&ctx, interaction).await
            }
            I::Read { resource_type, id } => {
                interactions::read::read(&ctx, &resource_type, &id).await
            }
            I::VRead {
                resource_type,
                id,
                version_id,
            } => interactions::read::vread(&ctx, &resource_type, &id, version_id).await,
            I::Create { resource_type } => interactions::write::create(&ctx, &resource_type).await,
            I::Update { resource_type, id } => {
                interactions::write::update(&ctx, &resource_type, Some(id)).await
            }
            I::ConditionalUpdate { resource_type } => {
                interactions::write::update(&ctx, &resource_type, None).await
            }
            I::Patch { resource_type, id } => {
                interactions::write::patch(&ctx, &resource_type, Some(id)).await
            }
            I::ConditionalPatch { resource_type } => {
                interactions::write::patch(&ctx, &resource_type, None).await
            }
            I::Delete { resource_type, id } => {
                interactions::write::delete(&ctx, &resource_type, Some(id)).await
            }
            I::ConditionalDelete { resource_type } => {
                interactions::write::delete(&ctx, &resource_type, None).await
            }
            I::Operation { name, target } => operations::invoke(&ctx, &name, target).await,
        }
    }
}

impl std::fmt::Debug for FhirServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirServer")
            .field("base_url", &self.inner.config.base_url)
            .finish()
    }
}

/// True when `request` may create, change or delete `SearchParameter` resources (then the
/// search parameters are reloaded after it succeeds).
fn writes_search_parameters(request: &FhirRequest, interaction: &Interaction) -> bool {
    use Interaction as I;
    match interaction {
        I::Create { resource_type }
        | I::Update { resource_type, .. }
        | I::ConditionalUpdate { resource_type }
        | I::Patch { resource_type, .. }
        | I::ConditionalPatch { resource_type }
        | I::Delete { resource_type, .. }
        | I::ConditionalDelete { resource_type } => resource_type == "SearchParameter",
        I::BatchOrTransaction => request
            .body
            .windows(b"SearchParameter".len())
            .any(|w| w == b"SearchParameter"),
        _ => false,
    }
}

/// `Err` for requests that a server-managed type does not take from clients.
pub(crate) fn reject_client_writes(resource_type: &str) -> ApiResult<()> {
    if resource_type == oxifhir_model::resource_type::ASYNC_JOB {
        return Err(ApiError::new(
            crate::error::ErrorKind::MethodNotAllowed,
            "AsyncJob resources are managed by the server; start a job with 'Prefer: respond-async'",
        ));
    }
    Ok(())
}
