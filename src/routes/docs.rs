//! The OpenAPI document at `/openapi.json` and its Swagger UI at `/docs/`, bundled in the
//! binary. Served by our own routes rather than the UI crate's service, so that `/docs`
//! redirects, an unknown file is the 404 envelope, and HEAD works as on every GET route.

use std::sync::Arc;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use utoipa_swagger_ui::Config;

use super::resource::{get, resource};
use crate::envelope::Envelope;
use crate::error::{ApiError, Result};

/// The document, serialised once, and the UI's configuration.
struct Docs {
    document: String,
    config: Arc<Config<'static>>,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let docs = web::Data::new(Docs {
        document: super::openapi::document()
            .to_json()
            .expect("the generated document serialises"),
        config: Arc::new(Config::new(["/openapi.json"])),
    });
    cfg.service(
        resource("/openapi.json", "GET, HEAD")
            .app_data(docs.clone())
            .route(get().to(document)),
    )
    .service(resource("/docs", "GET, HEAD").route(get().to(to_index)))
    .service(
        resource("/docs/", "GET, HEAD")
            .app_data(docs.clone())
            .route(get().to(index)),
    )
    .service(
        resource("/docs/{file}", "GET, HEAD")
            .app_data(docs)
            .route(get().to(file)),
    );
}

async fn document(docs: web::Data<Docs>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(docs.document.clone())
}

/// `/docs` is the UI's directory: its relative asset links need the slash.
async fn to_index() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .json(Envelope::new(
            StatusCode::PERMANENT_REDIRECT,
            "the documentation is at /docs/",
        ))
}

async fn index(docs: web::Data<Docs>) -> Result<HttpResponse> {
    serve("", &docs)
}

async fn file(docs: web::Data<Docs>, name: web::Path<String>) -> Result<HttpResponse> {
    serve(&name, &docs)
}

fn serve(name: &str, docs: &Docs) -> Result<HttpResponse> {
    let file = utoipa_swagger_ui::serve(name, docs.config.clone())
        .map_err(|e| anyhow::anyhow!("Swagger UI file {name}: {e}"))?
        .ok_or(ApiError::NotFound)?;
    let mut response = HttpResponse::Ok();
    response.content_type(file.content_type);
    if file.gzpipped {
        response.insert_header((header::CONTENT_ENCODING, "gzip"));
    }
    Ok(response.body(file.bytes.into_owned()))
}
