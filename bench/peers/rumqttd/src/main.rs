//! rumqttd 0.20 as released, started from a TOML configuration file given as the only argument.

fn main() {
    let path = std::env::args().nth(1).expect("usage: rumqttd CONFIG.toml");
    let config: rumqttd::Config = config::Config::builder()
        .add_source(config::File::with_name(&path))
        .build()
        .expect("read the configuration")
        .try_deserialize()
        .expect("a rumqttd configuration");
    rumqttd::Broker::new(config).start().expect("rumqttd runs");
}
