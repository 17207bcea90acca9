//! The search parameters this server knows: the R4 table plus the active `SearchParameter`
//! resources stored on it (custom parameters), as one snapshot used by the search parser,
//! index extraction on every write and the CapabilityStatement.
//!
//! The [`Registry`] loads custom parameters from the store at start, again right after this
//! node writes a `SearchParameter`, and when its snapshot is older than [`REFRESH_AFTER`] (so
//! that other nodes' changes arrive too). A custom parameter indexes every write from then
//! on; resources stored before it get its entries from `$reindex`, which then marks it
//! indexed ([`Store::mark_param_indexed`]). Until then searches on it warn that older data
//! is not indexed yet.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant as Clock};

use oxifhir_model::index::{self, CompiledParam, IndexEntries};
use oxifhir_model::resource_type;
use oxifhir_model::search_param::{self, SearchParamDef, SearchParamType};
use oxifhir_store::{
    Condition, EntryTest, IndexedParam, SearchQuery, Store, TokenSystem, TokenTest,
};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// How old a snapshot may get before the next use reloads it.
pub const REFRESH_AFTER: Duration = Duration::from_secs(10);

/// The `SearchParameter` resources read per page while loading.
const LOAD_PAGE: usize = 500;

/// A custom search parameter: an active `SearchParameter` resource stored on this server.
#[derive(Debug)]
pub struct CustomParam {
    pub def: SearchParamDef,
    /// Identifies this definition in the store's marks of indexed parameters.
    pub fingerprint: String,
    /// True when marked as indexed for every stored resource.
    pub indexed: bool,
    /// The expression compiled for each type it applies to.
    compiled: HashMap<String, CompiledParam>,
}

/// A parameter as the search parser sees it.
#[derive(Debug, Clone, Copy)]
pub struct ParamRef<'a> {
    pub def: &'a SearchParamDef,
    /// A custom parameter not yet indexed for resources stored before it.
    pub pending: bool,
}

/// One consistent view of the parameters.
#[derive(Debug, Default)]
pub struct SearchParams {
    /// This server's base URL with a trailing `/`: absolute references under it point to
    /// resources here, other absolute references never do.
    base: Option<String>,
    custom: Vec<CustomParam>,
    /// The compiled custom parameters of each type, for extraction.
    extract: HashMap<String, Vec<CompiledParam>>,
}

impl SearchParams {
    /// The R4 parameters only (references resolved without a base URL).
    pub fn r4() -> Self {
        SearchParams::default()
    }

    /// The R4 parameters, for a server at `base_url`.
    pub fn for_base(base_url: &str) -> Self {
        SearchParams {
            base: Some(format!("{}/", base_url.trim_end_matches('/'))),
            ..Default::default()
        }
    }

    /// Parameter `code` of `resource_type`: R4 first, then custom.
    pub fn lookup(&self, resource_type: &str, code: &str) -> Option<ParamRef<'_>> {
        if let Some(def) = search_param::lookup(resource_type, code) {
            return Some(ParamRef {
                def,
                pending: false,
            });
        }
        self.custom
            .iter()
            .find(|c| c.def.code == code && c.compiled.contains_key(resource_type))
            .map(|c| ParamRef {
                def: &c.def,
                pending: !c.indexed,
            })
    }

    /// Every parameter of `resource_type`, R4 and custom, sorted by code.
    pub fn for_type(&self, resource_type: &str) -> Vec<ParamRef<'_>> {
        let mut out: Vec<ParamRef<'_>> = search_param::for_type(resource_type)
            .into_iter()
            .map(|def| ParamRef {
                def,
                pending: false,
            })
            .collect();
        out.extend(
            self.custom
                .iter()
                .filter(|c| c.compiled.contains_key(resource_type))
                .map(|c| ParamRef {
                    def: &c.def,
                    pending: !c.indexed,
                }),
        );
        out.sort_by(|a, b| a.def.code.cmp(&b.def.code));
        out
    }

    /// The custom parameters.
    pub fn custom(&self) -> &[CustomParam] {
        &self.custom
    }

    /// The index entries of `resource` for every parameter of its type, R4 and custom.
    pub fn index(&self, resource_type: &str, resource: &Value) -> IndexEntries {
        let mut entries = index::extract(resource_type, resource);
        if let Some(custom) = self.extract.get(resource_type) {
            index::extract_into(custom, resource, &mut entries);
        }
        self.localize(&mut entries);
        entries
    }

    /// The index entries of `resource` for `params` only (compiled for its type), as
    /// [`SearchParams::index`] makes them (for `$reindex` of some parameters).
    pub fn index_only(&self, params: &[CompiledParam], resource: &Value) -> IndexEntries {
        let mut entries = IndexEntries::default();
        index::extract_into(params, resource, &mut entries);
        self.localize(&mut entries);
        entries
    }

    /// Absolute references outside this server's base point to no resource here.
    fn localize(&self, entries: &mut IndexEntries) {
        if let Some(base) = &self.base {
            for entry in &mut entries.references {
                if entry.target_id.is_some()
                    && entry.url.contains("://")
                    && !entry.url.starts_with(base.as_str())
                {
                    entry.target_type = None;
                    entry.target_id = None;
                }
            }
        }
    }
}

impl CustomParam {
    /// Its expression compiled for `resource_type`; `None` when it does not apply to it.
    pub fn compiled_for(&self, resource_type: &str) -> Option<&CompiledParam> {
        self.compiled.get(resource_type)
    }

    /// The resource types it applies to, sorted.
    pub fn types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = self.compiled.keys().map(String::as_str).collect();
        types.sort_unstable();
        types
    }
}

/// Identifies a definition: a hash of what decides its index entries.
pub fn fingerprint(def: &SearchParamDef) -> String {
    let mut hasher = DefaultHasher::new();
    (
        &def.code,
        def.kind.code(),
        &def.base,
        &def.expression,
        &def.target,
    )
        .hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// Checks that a `SearchParameter` resource can be honoured, so that writing it fails with a
/// clear `400` rather than being stored and silently unused: when `status` is `active` and
/// the url is not one of R4's own, it needs a supported type, known base types, an expression
/// the FHIRPath subset evaluates for each of them, and a code no R4 parameter of those types
/// uses. Other statuses are stored as they are.
pub fn validate(resource: &Value) -> ApiResult<()> {
    if resource.get("status").and_then(Value::as_str) != Some("active") {
        return Ok(());
    }
    let def = SearchParamDef::from_resource(resource).map_err(ApiError::bad_request)?;
    compile(&def).map(|_| ())
}

/// The types a definition applies to, with its expression compiled for each.
fn compile(def: &SearchParamDef) -> ApiResult<HashMap<String, CompiledParam>> {
    let bad = |text: String| Err(ApiError::bad_request(text).at("SearchParameter"));
    if search_param::by_url(&def.url).is_some() {
        return Ok(HashMap::new());
    }
    if matches!(
        def.kind,
        SearchParamType::Composite | SearchParamType::Special
    ) {
        return bad(format!(
            "SearchParameter '{}': custom parameters of type {} are not supported",
            def.code, def.kind
        ));
    }
    if def.expression.is_none() {
        return bad(format!(
            "SearchParameter '{}' needs an expression to be active",
            def.code
        ));
    }
    if !def
        .code
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        || def.code.is_empty()
    {
        return bad(format!(
            "SearchParameter code '{}' must be letters, digits, '-' and '_'",
            def.code
        ));
    }
    let mut compiled = HashMap::new();
    for base in &def.base {
        if !matches!(base.as_str(), "Resource" | "DomainResource") && !resource_type::is_known(base)
        {
            return bad(format!(
                "SearchParameter base '{base}' is not a resource type"
            ));
        }
    }
    for t in resource_type::all() {
        if !def.applies_to(t) {
            continue;
        }
        if search_param::lookup(t, &def.code).is_some() {
            return bad(format!(
                "SearchParameter code '{}' is already an R4 search parameter of {t}",
                def.code
            ));
        }
        match CompiledParam::compile(def, t) {
            Ok(Some(param)) => {
                compiled.insert(t.to_string(), param);
            }
            Ok(None) => {
                return bad(format!(
                    "SearchParameter '{}': the expression has no part for {t}",
                    def.code
                ));
            }
            Err(e) => {
                return bad(format!(
                    "SearchParameter '{}': the expression is not supported: {e}",
                    def.code
                ));
            }
        }
    }
    Ok(compiled)
}

/// Holds the current snapshot and reloads it.
#[derive(Debug)]
pub struct Registry {
    base_url: String,
    current: RwLock<(Arc<SearchParams>, Option<Clock>)>,
    /// Serializes reloads.
    loading: tokio::sync::Mutex<()>,
}

impl Registry {
    /// A registry for a server at `base_url`, with the R4 parameters until the first load.
    pub fn new(base_url: &str) -> Self {
        Registry {
            base_url: base_url.to_string(),
            current: RwLock::new((Arc::new(SearchParams::for_base(base_url)), None)),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    /// The snapshot, reloaded first when it was never loaded or is older than
    /// [`REFRESH_AFTER`].
    pub async fn get(&self, store: &dyn Store) -> ApiResult<Arc<SearchParams>> {
        let (snapshot, loaded) = self.read();
        if loaded.is_some_and(|at| at.elapsed() < REFRESH_AFTER) {
            return Ok(snapshot);
        }
        self.reload(store).await
    }

    fn read(&self) -> (Arc<SearchParams>, Option<Clock>) {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        (guard.0.clone(), guard.1)
    }

    /// Loads the active custom parameters and the store's marks now.
    pub async fn reload(&self, store: &dyn Store) -> ApiResult<Arc<SearchParams>> {
        let _loading = self.loading.lock().await;
        let marks: HashMap<String, String> = store
            .indexed_params()
            .await?
            .into_iter()
            .map(|m| (m.url, m.fingerprint))
            .collect();
        let mut custom: Vec<CustomParam> = Vec::new();
        for resource in active_search_parameters(store).await? {
            let Ok(def) = SearchParamDef::from_resource(&resource) else {
                continue;
            };
            match compile(&def) {
                Ok(compiled) if !compiled.is_empty() => {
                    if custom.iter().any(|c| c.def.url == def.url) {
                        tracing::warn!(url = %def.url, "two active SearchParameters share a url; the first is used");
                        continue;
                    }
                    let fingerprint = fingerprint(&def);
                    let indexed = marks.get(&def.url) == Some(&fingerprint);
                    custom.push(CustomParam {
                        def,
                        fingerprint,
                        indexed,
                        compiled,
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(url = %def.url, error = %e.message(), "SearchParameter not used");
                }
            }
        }
        custom.sort_by(|a, b| a.def.url.cmp(&b.def.url));
        let mut extract: HashMap<String, Vec<CompiledParam>> = HashMap::new();
        for param in &custom {
            for (t, compiled) in &param.compiled {
                extract.entry(t.clone()).or_default().push(compiled.clone());
            }
        }
        let snapshot = Arc::new(SearchParams {
            custom,
            extract,
            ..SearchParams::for_base(&self.base_url)
        });
        *self.current.write().unwrap_or_else(|p| p.into_inner()) =
            (snapshot.clone(), Some(Clock::now()));
        Ok(snapshot)
    }

    /// After this node wrote `SearchParameter` resources: reloads, marks a new parameter as
    /// indexed when no resource of its types is stored (nothing to reindex), and removes the
    /// marks of parameters that are no longer active.
    pub async fn changed(&self, store: &dyn Store) -> ApiResult<()> {
        let (before, _) = self.read();
        let after = self.reload(store).await?;
        let mut marked = false;
        for param in after.custom.iter().filter(|c| !c.indexed) {
            let types: Vec<String> = param.compiled.keys().cloned().collect();
            let any = store
                .search(&SearchQuery {
                    resource_types: types,
                    count: 1,
                    ..Default::default()
                })
                .await?;
            if any.resources.is_empty() {
                store
                    .mark_param_indexed(&IndexedParam {
                        url: param.def.url.clone(),
                        fingerprint: param.fingerprint.clone(),
                    })
                    .await?;
                marked = true;
            }
        }
        for gone in before
            .custom
            .iter()
            .filter(|b| !after.custom.iter().any(|a| a.def.url == b.def.url))
        {
            store
                .mark_param_indexed(&IndexedParam {
                    url: gone.def.url.clone(),
                    fingerprint: String::new(),
                })
                .await?;
        }
        if marked {
            self.reload(store).await?;
        }
        Ok(())
    }

    /// Marks the custom parameter `url` as indexed for every stored resource if it is still
    /// defined as `fingerprint` says (what a `$reindex` that started under that definition
    /// calls when it completes). `false`, marking nothing, when it is not.
    pub async fn mark_indexed_as(
        &self,
        store: &dyn Store,
        url: &str,
        fingerprint: &str,
    ) -> ApiResult<bool> {
        let snapshot = self.reload(store).await?;
        let current = snapshot.custom.iter().find(|c| c.def.url == url);
        if current.is_none_or(|c| c.fingerprint != fingerprint) {
            return Ok(false);
        }
        store
            .mark_param_indexed(&IndexedParam {
                url: url.to_string(),
                fingerprint: fingerprint.to_string(),
            })
            .await?;
        self.reload(store).await?;
        Ok(true)
    }

    /// Marks the custom parameter `url` as indexed for every stored resource, as currently
    /// defined (the hook `$reindex` calls when it has re-extracted every resource of its
    /// types). `false` when no active custom parameter has that url.
    pub async fn mark_indexed(&self, store: &dyn Store, url: &str) -> ApiResult<bool> {
        let snapshot = self.reload(store).await?;
        let Some(param) = snapshot.custom.iter().find(|c| c.def.url == url) else {
            return Ok(false);
        };
        store
            .mark_param_indexed(&IndexedParam {
                url: url.to_string(),
                fingerprint: param.fingerprint.clone(),
            })
            .await?;
        self.reload(store).await?;
        Ok(true)
    }
}

/// The bodies of every current `SearchParameter` with `status` `active`.
async fn active_search_parameters(store: &dyn Store) -> ApiResult<Vec<Value>> {
    let mut query = SearchQuery {
        resource_types: vec!["SearchParameter".into()],
        conditions: vec![Condition::Match {
            param: "status".into(),
            tests: vec![EntryTest::Token(TokenTest::Code {
                system: TokenSystem::Any,
                code: "active".into(),
            })],
        }],
        count: LOAD_PAGE,
        ..Default::default()
    };
    let mut out = Vec::new();
    loop {
        let page = store.search(&query).await?;
        for version in &page.resources {
            match oxifhir_model::json::parse(&version.body) {
                Ok(value) => out.push(value),
                Err(e) => {
                    tracing::warn!(id = %version.id, error = %e, "unreadable SearchParameter")
                }
            }
        }
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => return Ok(out),
        }
    }
}
