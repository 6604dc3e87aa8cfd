//! The OpenAPI 3.1 document, generated from the handlers and types.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dynzero read API",
        description = "The read side of the dynzero hub (零就业家庭动态为零): households, lineage, alerts, \
statistics and rejected messages, scoped to the division prefix of the bearer token. A household \
outside the scope is 404; a `division` parameter outside it is 403; a missing or unknown token is \
401. Errors are RFC 9457 problem documents. `masked` tokens see id numbers as `210302********123X` \
and names as `王*明`; every read of a household with a `full` token is audited.\n\n\
Statistics: a **spell** is a maximal run of a household's published versions whose status is \
`zero_employment`; it opens at the run's first version and closes at the next version. \
`households`, `zero_employment`, `placement_overdue`, `visit_overdue`, `dual_employment` and \
`dibao_among_zero` are counted today; `new_this_month`, `resolved_this_month` and \
`median_days_to_placement` over the versions published in `month` (Asia/Shanghai); \
`stable_employment_rate` over the members employed at the close of the spells closed in the 12 \
months ending with `month`, against the target 0.70. Each field's schema says the rest.",
        version = "1"
    ),
    paths(
        crate::households::list,
        crate::households::get_one,
        crate::alerts::list,
        crate::alerts::stream,
        crate::stats::get_stats,
        crate::rejections::list,
        crate::rejections::replay,
    ),
    components(schemas(crate::http::Problem)),
    modifiers(&Bearer),
    tags(
        (name = "households", description = "The ledger (台账) and each household's lineage"),
        (name = "alerts", description = "Alerts (预警), listed and live"),
        (name = "stats", description = "Four-level statistics (统计)"),
        (name = "rejections", description = "Rejected messages (拒收消息)"),
    )
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
