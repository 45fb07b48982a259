//! Join / Request / Result messages (in progress).
