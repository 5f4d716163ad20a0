//! Compiles the Slint UI into Rust, with the dark Fluent widgets under the
//! project's own theme. Debug builds keep the element debug info that UI
//! tests find elements by.

fn main() {
    let debug = std::env::var("PROFILE").is_ok_and(|profile| profile != "release");
    let config = slint_build::CompilerConfiguration::new()
        .with_style("fluent-dark".into())
        .with_debug_info(debug);
    slint_build::compile_with_config("ui/app.slint", config).expect("the Slint UI compiles");
}
