//! What a mail or a security event may say about a client's software: a browser and an OS
//! family from a maintained parser's fixed vocabulary (its dataset's labels), never the `User-Agent` text itself,
//! which a requester writes as they please ("Your account was hacked, call …").

/// `"Firefox on Linux"`, `"Chrome"`, or `"an unknown browser"`.
pub fn describe(user_agent: Option<&str>) -> String {
    let parser = woothee::parser::Parser::new();
    let parsed = user_agent.and_then(|agent| parser.parse(agent));
    let known = |v: &str| !v.is_empty() && v != woothee::woothee::VALUE_UNKNOWN;
    match parsed {
        Some(p) if known(p.name) && known(p.os) => format!("{} on {}", p.name, p.os),
        Some(p) if known(p.name) => p.name.to_string(),
        _ => "an unknown browser".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn names_the_family_and_never_echoes_the_text() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
        assert_eq!(describe(Some(firefox)), "Firefox on Linux");
        let cases = [
            "Your account was hacked, call +1-555-0100 or visit https://evil.example/secure",
            "Mozilla/5.0 (call +1-555-0100) evil.example/secure",
            "",
        ];
        for agent in cases {
            let said = describe(Some(agent));
            assert!(!said.contains("555") && !said.contains("evil"), "{agent} -> {said}");
        }
        assert_eq!(describe(None), "an unknown browser");
    }
}
