//! Requests from workers, checked and turned into the state's types.

use std::collections::BTreeSet;

use vectron_proto::control::v1 as ctl;

use crate::error::RegistrationError;
use crate::state::{CoreReport, HeldShard, Registration, WorkerReport};

const MAX_WORKER_ID_LEN: usize = 64;

/// Checks a worker id: 1 to 64 characters from `[A-Za-z0-9_.-]`.
pub(crate) fn validate_worker_id(worker_id: &str) -> Result<(), RegistrationError> {
    let ok = !worker_id.is_empty()
        && worker_id.len() <= MAX_WORKER_ID_LEN
        && worker_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(RegistrationError::WorkerId {
            worker_id: worker_id.to_owned(),
        })
    }
}

/// Checks a worker's zone label: empty (no zone), or what a worker id may be.
///
/// # Errors
/// [`RegistrationError::Zone`] naming the label.
pub fn validate_zone(zone: &str) -> Result<(), RegistrationError> {
    if zone.is_empty() || validate_worker_id(zone).is_ok() {
        Ok(())
    } else {
        Err(RegistrationError::Zone {
            zone: zone.to_owned(),
        })
    }
}

/// Whether `address` looks like `host:port` (IPv6 hosts in brackets).
pub(crate) fn is_host_port(address: &str) -> bool {
    let Some((host, port)) = address.rsplit_once(':') else {
        return false;
    };
    let host_ok = !host.is_empty()
        && !host
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '@');
    host_ok && port.parse::<u16>().is_ok_and(|p| p != 0)
}

/// Checks a registration.
pub(crate) fn registration(
    request: &ctl::RegisterWorkerRequest,
) -> Result<Registration, RegistrationError> {
    validate_worker_id(&request.worker_id)?;
    let host = &request.data_host;
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(RegistrationError::DataHost { host: host.clone() });
    }
    if request.cores.is_empty() {
        return Err(RegistrationError::NoCores);
    }
    let last = u32::try_from(request.cores.len() - 1).unwrap_or(u32::MAX);
    let mut seen_cores = BTreeSet::new();
    let mut seen_ports = BTreeSet::new();
    let mut cores = Vec::with_capacity(request.cores.len());
    for endpoint in &request.cores {
        if endpoint.core > last || !seen_cores.insert(endpoint.core) {
            return Err(RegistrationError::CoreIndex {
                core: endpoint.core,
                last,
            });
        }
        if endpoint.port == 0
            || endpoint.port > u32::from(u16::MAX)
            || !seen_ports.insert(endpoint.port)
        {
            return Err(RegistrationError::Port {
                core: endpoint.core,
                port: endpoint.port,
            });
        }
        cores.push((endpoint.core, endpoint.port));
    }
    cores.sort_unstable();
    validate_zone(&request.zone)?;
    if !request.admin_address.is_empty() && !is_host_port(&request.admin_address) {
        return Err(RegistrationError::AdminAddress {
            address: request.admin_address.clone(),
        });
    }
    Ok(Registration {
        worker_id: request.worker_id.clone(),
        data_host: host.clone(),
        admin_address: request.admin_address.clone(),
        cores,
        cluster_id: request.cluster_id.clone(),
        zone: request.zone.clone(),
    })
}

/// A rate as reported, or 0 when it is not a finite, non-negative number.
fn rate(value: f64) -> f64 {
    if value.is_finite() && value >= 0.0 {
        value
    } else {
        0.0
    }
}

/// Turns a heartbeat into a report.
pub(crate) fn report(request: &ctl::HeartbeatRequest) -> Result<WorkerReport, RegistrationError> {
    validate_worker_id(&request.worker_id)?;
    Ok(WorkerReport {
        worker_id: request.worker_id.clone(),
        cores: request
            .cores
            .iter()
            .map(|core| CoreReport {
                core: core.core,
                memory_bytes: core.memory_bytes,
                search_qps: rate(core.search_qps),
                upsert_points_per_s: rate(core.upsert_points_per_s),
                in_flight: core.in_flight,
                queue_depth: core.queue_depth,
                shards: core
                    .shards
                    .iter()
                    .map(|held| HeldShard {
                        collection: held.collection.clone(),
                        shard_id: held.shard_id,
                        epoch: held.epoch,
                        points: held.points,
                        memory_bytes: held.memory_bytes,
                    })
                    .collect(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(cores: &[(u32, u32)]) -> ctl::RegisterWorkerRequest {
        ctl::RegisterWorkerRequest {
            worker_id: "w-1.a_b".into(),
            data_host: "10.0.0.5".into(),
            cores: cores
                .iter()
                .map(|&(core, port)| ctl::CoreEndpoint { core, port })
                .collect(),
            admin_address: "10.0.0.5:9000".into(),
            cluster_id: String::new(),
            zone: "eu-west-1a".into(),
        }
    }

    #[test]
    fn a_good_registration_passes() {
        let r = registration(&request(&[(1, 7001), (0, 7000)])).unwrap();
        assert_eq!(r.cores, vec![(0, 7000), (1, 7001)]);
    }

    #[test]
    fn bad_registrations_are_refused() {
        assert_eq!(registration(&request(&[])), Err(RegistrationError::NoCores));
        assert_eq!(
            registration(&request(&[(0, 7000), (0, 7001)])),
            Err(RegistrationError::CoreIndex { core: 0, last: 1 })
        );
        assert_eq!(
            registration(&request(&[(0, 7000), (2, 7001)])),
            Err(RegistrationError::CoreIndex { core: 2, last: 1 })
        );
        assert_eq!(
            registration(&request(&[(0, 7000), (1, 7000)])),
            Err(RegistrationError::Port {
                core: 1,
                port: 7000
            })
        );
        assert_eq!(
            registration(&request(&[(0, 70_000)])),
            Err(RegistrationError::Port {
                core: 0,
                port: 70_000
            })
        );
        let mut bad_id = request(&[(0, 7000)]);
        bad_id.worker_id = "w 1".into();
        assert!(matches!(
            registration(&bad_id),
            Err(RegistrationError::WorkerId { .. })
        ));
        let mut bad_zone = request(&[(0, 7000)]);
        bad_zone.zone = "rack 7".into();
        assert_eq!(
            registration(&bad_zone),
            Err(RegistrationError::Zone {
                zone: "rack 7".into()
            })
        );
        bad_zone.zone = "z".repeat(65);
        assert!(registration(&bad_zone).is_err());
        bad_zone.zone = String::new();
        assert_eq!(registration(&bad_zone).unwrap().zone, "");
        let mut bad_host = request(&[(0, 7000)]);
        bad_host.data_host = String::new();
        assert!(matches!(
            registration(&bad_host),
            Err(RegistrationError::DataHost { .. })
        ));
        let mut bad_admin = request(&[(0, 7000)]);
        bad_admin.admin_address = "nohost".into();
        assert!(matches!(
            registration(&bad_admin),
            Err(RegistrationError::AdminAddress { .. })
        ));
    }

    #[test]
    fn host_port_shapes() {
        assert!(is_host_port("127.0.0.1:7000"));
        assert!(is_host_port("[::1]:7000"));
        assert!(is_host_port("control-1.example:7000"));
        assert!(!is_host_port("127.0.0.1"));
        assert!(!is_host_port(":7000"));
        assert!(!is_host_port("h:0"));
        assert!(!is_host_port("h:99999"));
    }

    #[test]
    fn rates_that_are_not_numbers_become_zero() {
        let heartbeat = ctl::HeartbeatRequest {
            worker_id: "w1".into(),
            cores: vec![ctl::CoreSummary {
                core: 0,
                search_qps: f64::NAN,
                upsert_points_per_s: f64::INFINITY,
                ..Default::default()
            }],
        };
        let report = report(&heartbeat).unwrap();
        assert_eq!(report.cores[0].search_qps, 0.0);
        assert_eq!(report.cores[0].upsert_points_per_s, 0.0);
    }
}
