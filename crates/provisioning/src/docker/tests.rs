//! Unit tests of the Docker driver that need no engine: configuration,
//! construction, and usage figures computed from stats answers.

use std::collections::HashMap;

use bollard::models::ContainerStatsResponse;

use super::metrics::{cpu_cores_used, memory_used};
use super::*;

#[test]
fn the_config_debug_redacts_the_key() {
    let mut cfg = DockerConfig::new("tcp://docker1.example:2376");
    cfg.client_key_pem = Some(SecretString::from("-----BEGIN PRIVATE KEY----- 5f0c1b7e"));
    assert!(!format!("{cfg:?}").contains("5f0c1b7e"));
}

#[test]
fn bad_urls_fail_at_construction() {
    assert!(DockerDriver::new(DockerConfig::new("http://docker1:2375")).is_err());
    assert!(DockerDriver::new(DockerConfig::new("tcp://docker1.example:2376")).is_ok());
}

#[test]
fn cpu_is_computed_as_docker_stats_does() {
    use bollard::models::{ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats};
    let cpu = |total, system| ContainerCpuStats {
        cpu_usage: Some(ContainerCpuUsage {
            total_usage: Some(total),
            ..Default::default()
        }),
        system_cpu_usage: Some(system),
        online_cpus: Some(4),
        ..Default::default()
    };
    let s = ContainerStatsResponse {
        cpu_stats: Some(cpu(1_500, 10_000)),
        precpu_stats: Some(cpu(1_000, 8_000)),
        memory_stats: Some(ContainerMemoryStats {
            usage: Some(100 << 20),
            stats: Some(HashMap::from([("inactive_file".to_owned(), 30 << 20)])),
            ..Default::default()
        }),
        ..Default::default()
    };
    // 500 of 2000 ns of all four CPUs: one core.
    assert!((cpu_cores_used(&s).unwrap() - 1.0).abs() < 1e-9);
    assert_eq!(memory_used(&s), Some(70 << 20));
}
