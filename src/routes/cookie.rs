//! The refresh-token cookie `jwt`: reading it leniently, writing it strictly.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite as CookieSameSite, time::Duration as CookieDuration};
use actix_web::http::header;

use crate::config::{CookieSettings, SameSite};

pub const NAME: &str = "jwt";
/// Only the refresh and logout routes need the cookie, so the browser sends it nowhere else.
pub const PATH: &str = "/auth";

/// What the request's `Cookie` headers say about `jwt`.
#[derive(Debug, PartialEq, Eq)]
pub enum RefreshCookie {
    Missing,
    Empty,
    Present(String),
}

/// Finds `jwt` among the request's cookies.
///
/// Parsed by hand rather than with actix's `cookie()`, which gives up on the whole header at
/// the first pair it cannot parse: the seed's Thunder collection sends
/// `jwt=<token>; HttpOnly; Secure; Max-Age=172800`, attributes that belong in `Set-Cookie`.
/// Pairs without `=` and unknown names are skipped; the first `jwt` wins.
pub fn read(req: &HttpRequest) -> RefreshCookie {
    let pairs = req
        .headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.split_once('='));
    for (name, value) in pairs {
        if name.trim() == NAME {
            let value = value.trim().trim_matches('"');
            return if value.is_empty() {
                RefreshCookie::Empty
            } else {
                RefreshCookie::Present(value.to_string())
            };
        }
    }
    RefreshCookie::Missing
}

/// A `Set-Cookie` header, for `HttpResponseBuilder::append_header`.
pub type SetCookie = (header::HeaderName, String);

/// `Set-Cookie` for a (new) refresh token: HttpOnly, Secure and SameSite per settings.
pub fn issue(token: &str, max_age_secs: u64, settings: &CookieSettings) -> SetCookie {
    let cookie = build(
        token.to_string(),
        CookieDuration::seconds(max_age_secs as i64),
        settings,
    );
    set_cookie(cookie, settings)
}

/// `Set-Cookie` that makes the browser forget the refresh token.
pub fn clear(settings: &CookieSettings) -> SetCookie {
    let mut cookie = build(String::new(), CookieDuration::ZERO, settings);
    cookie.set_expires(actix_web::cookie::time::OffsetDateTime::UNIX_EPOCH);
    set_cookie(cookie, settings)
}

/// With `SameSite=None` (an SPA on another site) the cookie is also `Partitioned` (CHIPS): browsers
/// that block third-party cookies keep a partitioned one, keyed to the SPA's site, which is the
/// only site that needs it. The cookie crate has no such attribute, hence the text.
fn set_cookie(cookie: Cookie<'static>, settings: &CookieSettings) -> SetCookie {
    let mut text = cookie.to_string();
    if settings.same_site == SameSite::None {
        text.push_str("; Partitioned");
    }
    (header::SET_COOKIE, text)
}

fn build(value: String, max_age: CookieDuration, settings: &CookieSettings) -> Cookie<'static> {
    Cookie::build(NAME, value)
        .path(PATH)
        .http_only(true)
        .secure(settings.secure)
        .same_site(match settings.same_site {
            SameSite::Strict => CookieSameSite::Strict,
            SameSite::Lax => CookieSameSite::Lax,
            SameSite::None => CookieSameSite::None,
        })
        .max_age(max_age)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn read_header(value: &str) -> RefreshCookie {
        read(
            &TestRequest::default()
                .insert_header((header::COOKIE, value))
                .to_http_request(),
        )
    }

    #[test]
    fn tolerates_attribute_junk() {
        let cases = [
            (
                "jwt=abc; HttpOnly; Secure; Max-Age=172800",
                RefreshCookie::Present("abc".into()),
                "Thunder header",
            ),
            (
                "theme=dark; jwt=abc",
                RefreshCookie::Present("abc".into()),
                "other cookie first",
            ),
            ("jwt=", RefreshCookie::Empty, "empty value"),
            ("jwtx=abc; xjwt=abc", RefreshCookie::Missing, "names must match exactly"),
            ("HttpOnly; Secure", RefreshCookie::Missing, "no pairs at all"),
            ("jwt=\"abc\"", RefreshCookie::Present("abc".into()), "quoted value"),
        ];
        for (header, expected, why) in cases {
            assert_eq!(read_header(header), expected, "{why}");
        }
    }

    #[test]
    fn issued_cookie_is_locked_down() {
        let settings = CookieSettings {
            secure: true,
            same_site: SameSite::Lax,
        };
        let text = issue("tok", 172_800, &settings).1;
        for part in [
            "jwt=tok",
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Path=/auth",
            "Max-Age=172800",
        ] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
        let cleared = clear(&settings).1;
        assert!(cleared.contains("Max-Age=0") && cleared.contains("jwt=;"), "{cleared}");
        assert!(!text.contains("Partitioned"));
        let cross_site = CookieSettings {
            secure: true,
            same_site: SameSite::None,
        };
        for (_, text) in [issue("tok", 60, &cross_site), clear(&cross_site)] {
            assert!(
                text.ends_with("; Partitioned") && text.contains("SameSite=None"),
                "{text}"
            );
        }
    }
}
