use std::time::Duration;

use fulcrum_sim::scenario::{Scenario, run};

#[test]
fn example_config_serves_traffic() {
    let config: fulcrum_model::config::Config = toml::from_str(include_str!("../../../examples/fulcrum.toml")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let summary = tokio::task::LocalSet::new().block_on(&rt, async {
        run(
            Scenario {
                config,
                seed: 7,
                clients: 4,
                rate: 20.0,
                duration: Duration::from_secs(4),
                drills: vec![],
                key: None,
                listen: None,
                serial: false,
                state_dir: std::env::temp_dir().join(format!("fulcrum-smoke-{}", std::process::id())),
            },
            |_| {},
        )
        .await
        .unwrap()
    });
    println!("{}", serde_json::to_string_pretty(&summary).unwrap());
}
