//! Free conversion functions between domain and proto types.

use tonic::{Code, Status};

use super::proto;
use crate::domain::{Decision, ScaledObjectKey};
use crate::runtime::{CoreError, METRIC_NAME, MetricTarget};

/// The ScaledObject identity and metadata of a request.
pub(super) fn key_of(r: &proto::ScaledObjectRef) -> ScaledObjectKey {
    ScaledObjectKey::new(r.namespace.clone(), r.name.clone())
}

/// The metric spec response. Both the integer and the float target are set:
/// KEDA before 2.17 reads only the integer.
pub(super) fn metric_spec_response(t: &MetricTarget) -> proto::GetMetricSpecResponse {
    proto::GetMetricSpecResponse {
        metric_specs: vec![proto::MetricSpec {
            metric_name: t.name.clone(),
            target_size: t.target.ceil() as i64,
            target_size_float: t.target,
        }],
    }
}

/// The metrics response carrying the desired replica count, in both fields.
pub(super) fn metrics_response(metric_name: &str, d: &Decision) -> proto::GetMetricsResponse {
    proto::GetMetricsResponse {
        metric_values: vec![proto::MetricValue {
            metric_name: metric_name.to_string(),
            metric_value: i64::from(d.desired_replicas),
            metric_value_float: f64::from(d.desired_replicas),
        }],
    }
}

/// Checks the metric KEDA asks for. KEDA strips its `sN-` trigger-index
/// prefix before calling, but older versions did not, so accept both.
pub(super) fn check_metric_name(requested: &str) -> Result<&str, CoreError> {
    let bare = match requested.split_once('-') {
        Some((prefix, rest))
            if prefix.len() > 1
                && prefix.starts_with('s')
                && prefix[1..].chars().all(|c| c.is_ascii_digit()) =>
        {
            rest
        }
        _ => requested,
    };
    if requested.is_empty() || bare == METRIC_NAME {
        Ok(if requested.is_empty() {
            METRIC_NAME
        } else {
            requested
        })
    } else {
        Err(CoreError::UnknownMetric {
            requested: requested.to_string(),
            expected: METRIC_NAME,
        })
    }
}

/// Maps core errors to gRPC status codes: the caller's mistakes are
/// `InvalidArgument`/`NotFound`, a core that cannot answer yet is `Unavailable`
/// (KEDA then keeps the current replica count).
pub(super) fn status_of(e: &CoreError) -> Status {
    let code = match e {
        CoreError::InvalidMetadata { .. }
        | CoreError::InvalidQuery { .. }
        | CoreError::MissingIdentity => Code::InvalidArgument,
        CoreError::UnknownMetric { .. } => Code::NotFound,
        CoreError::NotReady { .. } | CoreError::Stale { .. } => Code::Unavailable,
    };
    Status::new(code, e.to_string())
}

/// A `'static` name for a status code, for metric labels.
pub(super) fn code_label(code: Code) -> &'static str {
    match code {
        Code::Ok => "Ok",
        Code::Cancelled => "Cancelled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_with_and_without_trigger_index() {
        assert!(check_metric_name(METRIC_NAME).is_ok());
        assert!(check_metric_name(&format!("s0-{METRIC_NAME}")).is_ok());
        assert!(check_metric_name(&format!("s12-{METRIC_NAME}")).is_ok());
        assert!(check_metric_name("").is_ok());
        assert!(check_metric_name("s0-other").is_err());
        assert!(check_metric_name("foresight").is_err());
    }

    #[test]
    fn both_integer_and_float_fields_are_set() {
        let r = metric_spec_response(&MetricTarget {
            name: METRIC_NAME.into(),
            target: 1.0,
        });
        assert_eq!(r.metric_specs[0].target_size, 1);
        assert_eq!(r.metric_specs[0].target_size_float, 1.0);
    }
}
