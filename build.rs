//! Records the git commit for `auth_build_info{git_sha}`: `GIT_SHA` from the build environment
//! (container builds have no .git), else `git rev-parse`, else "unknown".
fn main() {
    println!("cargo:rerun-if-env-changed=GIT_SHA");
    println!("cargo:rerun-if-changed=.git/HEAD");
    let sha = std::env::var("GIT_SHA").ok().filter(|s| !s.is_empty()).or_else(|| {
        std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
    });
    println!(
        "cargo:rustc-env=AUTH_API_GIT_SHA={}",
        sha.unwrap_or_else(|| "unknown".into())
    );
}
