//! `/api/calibrate`: known CPU work for the profiler's truth test.
//!
//! The work is split between three functions that are never inlined — [`calibrate_sixty`], [`calibrate_thirty`] and
//! [`calibrate_ten`] — in a fixed ratio (60 / 30 / 10 by default). Each runs the same loop body a number of times
//! proportional to its share, so a correct CPU profile shows their self times in that ratio.
//!
//! Query: `units` (default [`DEFAULT_UNITS`], at most [`MAX_UNITS`]) is the total work in steps of
//! [`STEP_ITERATIONS`] loop iterations; `ratio=a,b,c` (default `60,30,10`) are the three shares in percent, which must
//! add up to 100.

use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get};
use serde_json::json;

use crate::state::AppState;

/// Default total work, in steps: about 5 ms of CPU in a release build here (2.5 ns an iteration).
pub const DEFAULT_UNITS: u64 = 100;
/// Largest `units` accepted, so one request cannot hold a core for long.
pub const MAX_UNITS: u64 = 100_000;
/// Loop iterations per step.
pub const STEP_ITERATIONS: u64 = 200;
/// The default shares of the three functions, in percent.
pub const DEFAULT_RATIO: [u64; 3] = [60, 30, 10];

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/calibrate", get(calibrate))
}

async fn calibrate(RawQuery(query): RawQuery) -> Response {
    match parse_query(query.as_deref().unwrap_or("")) {
        Ok((units, ratio)) => {
            let steps = ratio.map(|share| units * share);
            let checksum = calibrate_sixty(steps[0] * STEP_ITERATIONS)
                ^ calibrate_thirty(steps[1] * STEP_ITERATIONS)
                ^ calibrate_ten(steps[2] * STEP_ITERATIONS);
            Json(json!({"units": units, "ratio": ratio, "checksum": checksum})).into_response()
        }
        Err(reason) => (StatusCode::BAD_REQUEST, Json(json!({"error": reason}))).into_response(),
    }
}

fn parse_query(query: &str) -> Result<(u64, [u64; 3]), String> {
    let mut units = DEFAULT_UNITS;
    let mut ratio = DEFAULT_RATIO;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "units" => {
                units = value
                    .parse()
                    .ok()
                    .filter(|u| (1..=MAX_UNITS).contains(u))
                    .ok_or_else(|| format!("units must be an integer from 1 to {MAX_UNITS}, not {value:?}"))?;
            }
            "ratio" => {
                let parts: Vec<u64> = value
                    .split([',', '%'])
                    .filter(|p| !p.is_empty())
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|_| format!("ratio must be three integers like 60,30,10, not {value:?}"))?;
                ratio = <[u64; 3]>::try_from(parts)
                    .ok()
                    .filter(|r| r.iter().sum::<u64>() == 100)
                    .ok_or_else(|| format!("ratio must be three integers adding up to 100, not {value:?}"))?;
            }
            other => return Err(format!("unknown parameter {other:?}; use units and ratio")),
        }
    }
    Ok((units, ratio))
}

/// The loop every calibration function runs: a xorshift-multiply chain the optimiser cannot shorten. Each function
/// passes its own odd multiplier: the same cost per iteration, but different machine code, so the linker cannot
/// fold the three into one symbol (identical code folding would give all their samples to one name).
macro_rules! burn {
    ($iterations:expr, $multiplier:expr) => {{
        let mut x: u64 = std::hint::black_box(0x9E37_79B9_7F4A_7C15);
        for _ in 0..$iterations {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x = x.wrapping_mul($multiplier);
            x = std::hint::black_box(x);
        }
        x
    }};
}

/// 60 % of the calibration work by default.
#[inline(never)]
pub fn calibrate_sixty(iterations: u64) -> u64 {
    burn!(iterations, 0x2545_F491_4F6C_DD1D)
}

/// 30 % of the calibration work by default.
#[inline(never)]
pub fn calibrate_thirty(iterations: u64) -> u64 {
    burn!(iterations, 0x9FB2_1C65_1E98_DF25)
}

/// 10 % of the calibration work by default.
#[inline(never)]
pub fn calibrate_ten(iterations: u64) -> u64 {
    burn!(iterations, 0xD6E8_FEB8_6659_FD93)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(parse_query(""), Ok((DEFAULT_UNITS, DEFAULT_RATIO)));
        assert_eq!(parse_query("units=5&ratio=50,25,25"), Ok((5, [50, 25, 25])));
        assert!(parse_query("units=0").unwrap_err().contains("units"));
        assert!(parse_query("units=100001").unwrap_err().contains("units"));
        assert!(parse_query("ratio=60,30").unwrap_err().contains("three"));
        assert!(parse_query("ratio=60,30,20").unwrap_err().contains("100"));
        assert!(parse_query("ratio=a,b,c").unwrap_err().contains("ratio"));
        assert!(parse_query("seconds=1").unwrap_err().contains("unknown"));
    }

    #[test]
    fn the_three_functions_are_distinct_code() {
        // Different multipliers: different results, so no two can be folded into one symbol.
        let results = [calibrate_sixty(1000), calibrate_thirty(1000), calibrate_ten(1000)];
        assert!(results[0] != results[1] && results[1] != results[2] && results[0] != results[2]);
        assert_ne!(calibrate_ten(1000), calibrate_ten(1001));
        let addresses = [calibrate_sixty as fn(u64) -> u64, calibrate_thirty, calibrate_ten].map(|f| f as usize);
        assert!(addresses[0] != addresses[1] && addresses[1] != addresses[2]);
    }
}
