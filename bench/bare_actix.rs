//! The framework floor for bench/run.sh: a bare actix-web server answering `GET /` with a small
//! JSON body, no middleware, as many workers as cores (actix's default, as ours).
//! `HOST_ADDR=127.0.0.1:3098 cargo run --release --example bare_actix`

use actix_web::{App, HttpResponse, HttpServer, web};

fn main() -> std::io::Result<()> {
    let addr = std::env::var("HOST_ADDR").unwrap_or_else(|_| "127.0.0.1:3098".into());
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(|| {
            App::new().route(
                "/",
                web::get().to(|| async {
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(r#"{"success":true,"status":200,"content":"hello"}"#)
                }),
            )
        })
        .bind(addr)?
        .run()
        .await
    })
}
