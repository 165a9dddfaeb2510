//! MQTT quality of service as a type, so that an out-of-range level cannot travel through the code.

use serde::{Deserialize, Serialize};

/// Delivery guarantee of a message or a subscription (MQTT 3.1.1 and 5 share the three levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    /// The level of a wire or API value; anything above 2 is capped to 2 (the API clamps, brokers
    /// never see more from the codec).
    pub fn capped(level: u8) -> Self {
        match level {
            0 => Self::AtMostOnce,
            1 => Self::AtLeastOnce,
            _ => Self::ExactlyOnce,
        }
    }

    pub fn level(self) -> u8 {
        self as u8
    }

    /// The label value used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::AtMostOnce => "0",
            Self::AtLeastOnce => "1",
            Self::ExactlyOnce => "2",
        }
    }
}

impl From<QoS> for u8 {
    fn from(q: QoS) -> u8 {
        q.level()
    }
}

impl TryFrom<u8> for QoS {
    type Error = String;
    fn try_from(level: u8) -> Result<Self, String> {
        match level {
            0..=2 => Ok(Self::capped(level)),
            _ => Err(format!("QoS {level} is not 0, 1 or 2")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_order_and_serde() {
        assert!(QoS::AtMostOnce < QoS::ExactlyOnce);
        assert_eq!(QoS::AtLeastOnce.min(QoS::ExactlyOnce), QoS::AtLeastOnce);
        assert_eq!(QoS::capped(7), QoS::ExactlyOnce);
        assert_eq!(serde_json::to_string(&QoS::AtLeastOnce).unwrap(), "1");
        assert_eq!(serde_json::from_str::<QoS>("2").unwrap(), QoS::ExactlyOnce);
        assert!(serde_json::from_str::<QoS>("3").is_err());
    }
}
