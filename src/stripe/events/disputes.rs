//! Where a dispute stands, and how its news merge.

/// Where a dispute stands. An inquiry takes no money; a chargeback takes it until it is won.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisputeStatus {
    /// `warning_needs_response`, `warning_under_review`.
    Inquiry,
    /// `warning_closed`: the inquiry ended without a chargeback.
    InquiryClosed,
    /// `needs_response`, `under_review`: the money is withdrawn.
    Chargeback,
    Won,
    Lost,
    /// A status this build does not know (kept as Stripe wrote it); it moves no tokens.
    Other(String),
}

impl DisputeStatus {
    pub fn parse(raw: &str) -> Self {
        match raw {
            "warning_needs_response" | "warning_under_review" => Self::Inquiry,
            "warning_closed" => Self::InquiryClosed,
            "needs_response" | "under_review" => Self::Chargeback,
            "won" => Self::Won,
            "lost" => Self::Lost,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Inquiry => "warning_needs_response",
            Self::InquiryClosed => "warning_closed",
            Self::Chargeback => "needs_response",
            Self::Won => "won",
            Self::Lost => "lost",
            Self::Other(raw) => raw,
        }
    }

    /// Whether the customer's bank holds the money: the disputed tokens are taken.
    pub fn takes(&self) -> bool {
        matches!(self, Self::Chargeback | Self::Lost)
    }

    /// A dispute that ended stays ended, whatever older events arrive after.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::InquiryClosed | Self::Won | Self::Lost)
    }

    /// What the store keeps when it knew `self` and hears `news`: an end never reopens, and
    /// a chargeback never goes back to being an inquiry.
    pub fn merged(self, news: DisputeStatus) -> DisputeStatus {
        let rank = |s: &DisputeStatus| match s {
            s if s.is_final() => 2,
            DisputeStatus::Chargeback => 1,
            _ => 0,
        };
        if rank(&news) > rank(&self) || (rank(&news) == rank(&self) && !self.is_final()) {
            news
        } else {
            self
        }
    }
}
