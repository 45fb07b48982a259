//! `--zeros Z [--algo sha256|sha256d]`: the target-mode flags of `client` and `mine`
//! (docs/miner.md, "Target mode"). Without them a request is the reference's.

use bitcoin_core::hash::{Algo, Zeros};
use bitcoin_core::message::Mode;
use clap::Args;

/// The target-mode flags.
#[derive(Args, Clone, Debug, Default)]
pub struct ModeArgs {
    /// Target mode: find the smallest nonce whose hash has at least Z leading zero bits
    /// (1 to 64) instead of the minimum hash.
    #[arg(long, value_name = "Z", value_parser = parse_zeros)]
    pub zeros: Option<Zeros>,
    /// The hash of target mode: sha256 (the default) or sha256d (double SHA-256). Needs
    /// --zeros.
    #[arg(long, requires = "zeros")]
    pub algo: Option<Algo>,
}

impl ModeArgs {
    /// The mode the flags ask for.
    pub fn mode(&self) -> Mode {
        match self.zeros {
            None => Mode::Minimum,
            Some(zeros) => Mode::Target {
                zeros,
                algo: self.algo.unwrap_or_default(),
            },
        }
    }
}

fn parse_zeros(text: &str) -> Result<Zeros, String> {
    let n: u32 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of zero bits"))?;
    Zeros::new(n).map_err(|e| e.to_string())
}
