//! The label sets each labelled family is keyed by (`{class="chat",outcome="delivered"}`):
//! `EncodeLabelSet` derived over the fixed enums of `super::labels`, so a series can
//! only be made from known values.

use prometheus_client::encoding::EncodeLabelSet;

use super::labels::{
    BackendError, DeliveryOutcome, DeltaChatOutcome, DictCommit, MessageClass, Proto, PushOutcome,
    ReloadResult,
};

/// `{proto}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ProtoLabels {
    /// The listener.
    pub proto: Proto,
}

/// `{class}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ClassLabels {
    /// The message's class.
    pub class: MessageClass,
}

/// `{class, outcome}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// The message's class.
    pub class: MessageClass,
    /// The recipient's reply class.
    pub outcome: DeliveryOutcome,
}

/// `{kind}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct BackendLabels {
    /// What failed.
    pub kind: BackendError,
}

/// `{outcome}` of a push.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PushLabels {
    /// What became of it.
    pub outcome: PushOutcome,
}

/// `{outcome}` of a Delta Chat notification.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DeltaChatLabels {
    /// What became of it.
    pub outcome: DeltaChatOutcome,
}

/// `{result}` of a dict commit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DictLabels {
    /// How it ended.
    pub result: DictCommit,
}

/// `{result}` of a reload.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReloadLabels {
    /// How it ended.
    pub result: ReloadResult,
}

/// `{version}` of `coid_build_info`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct BuildLabels {
    /// The crate version coid was built from.
    pub version: &'static str,
}
