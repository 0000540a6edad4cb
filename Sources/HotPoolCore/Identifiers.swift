/// A connection's place in the table: its slot and the generation the slot had when the
/// connection was created. A slot's generation changes when its connection is destroyed, so a
/// handle to a destroyed connection is detected, never confused with the slot's next tenant.
package struct SlotHandle: Hashable, Sendable {
    package let slot: Int32
    package let generation: UInt32

    /// The handle packed into a readiness-event token (slot in the low half).
    package var token: UInt64 { UInt64(UInt32(bitPattern: slot)) | UInt64(generation) << 32 }

    package init(slot: Int32, generation: UInt32) {
        self.slot = slot
        self.generation = generation
    }

    package init(token: UInt64) {
        self.init(slot: Int32(bitPattern: UInt32(truncatingIfNeeded: token)), generation: UInt32(token >> 32))
    }
}

/// One lease of a connection: its slot and the slot's lease number when it was handed out. The
/// number changes whenever a lease ends (return or destruction), so a caller's handle is good
/// for its own lease only: a second put, or a put after the connection went to someone else,
/// is detected.
package struct LeaseHandle: Hashable, Sendable {
    package let slot: Int32
    package let lease: UInt32
    package init(slot: Int32, lease: UInt32) {
        self.slot = slot
        self.lease = lease
    }
}

/// Names one caller (a get, an `execute`, a `prewarm`, a `refreshAddresses`) within a pool; never
/// reused.
package struct WaiterID: Hashable, Sendable, BitwiseCopyable {
    package let raw: UInt64

    package init(raw: UInt64) {
        self.raw = raw
    }
}


/// Names one request the driver asks the machine to decide on (`requestExchange`): the
/// machine's answer (`startExchange`, `startStreamExchange` or `refuseExchange`) carries it, so
/// an answer is matched with its request by name, never by order. Never reused within a pool.
package struct ExchangeID: Hashable, Sendable {
    package let raw: UInt64

    package init(raw: UInt64) {
        self.raw = raw
    }
}
