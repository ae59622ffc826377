//! `extsecret render [PATH...]`: files, folders or stdin in, the rendered stream on stdout.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::manifest::{input, output};
use crate::settings::OperatorArgs;

/// Output format.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum Format {
    /// A YAML stream; documents that are not changed keep their original text
    #[default]
    Yaml,
    /// One `v1` `List` in JSON
    Json,
}

/// Arguments of `extsecret render`.
#[derive(Args, Debug)]
pub struct RenderArgs {
    /// Manifest files or folders (recursive); `-` or nothing reads stdin
    pub paths: Vec<PathBuf>,
    /// Output format
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml)]
    pub output: Format,
    /// Read only files that are, after following symbolic links, inside this folder (what Argo CD
    /// mode always does with the repository tree)
    #[arg(long, env = "EXTSECRET_CONFINE_TO", value_name = "DIR")]
    pub confine_to: Option<PathBuf>,
    #[command(flatten)]
    pub operator: OperatorArgs,
}

/// Runs the render; returns the exit code.
pub async fn run(args: RenderArgs) -> i32 {
    let settings = match super::bind(args.operator.settings(), &args.operator, false) {
        Ok(s) => s,
        Err(p) => return super::report(&p),
    };
    let confinement = match &args.confine_to {
        Some(dir) => match input::Confinement::new(dir, "--confine-to / EXTSECRET_CONFINE_TO", u64::MAX) {
            Ok(c) => Some(c),
            Err(p) => return super::report(&p.into()),
        },
        None => None,
    };
    let docs = match input::read_inputs_within(&args.paths, confinement.as_ref()) {
        Ok(d) => d,
        Err(p) => return super::report(&p),
    };
    let out = match super::render_with_settings(docs, &settings).await.and_then(|o| super::check_not_empty(&o, &settings).map(|_| o)) {
        Ok(o) => o,
        Err(p) => return super::report(&p),
    };
    let text = match args.output {
        Format::Yaml => output::write_yaml(&out),
        Format::Json => output::write_json_list(&out),
    };
    super::emit(&text)
}
