import HTTPTypes
import HotPoolCore
import HotPoolIO
import HotPoolStateMachine

/// Who waits for a connection.
package enum Caller {
    /// A get: the lease goes to the caller.
    case get(Handoff<Result<Lease, HotPoolError>>)
    /// An `execute`: the lease goes to its exchange, and is put back when that ends.
    case execute(PendingExecute)
    /// A `refreshAddresses`: the host's addresses after the lookup.
    case addresses(Handoff<Result<[String], HotPoolError>>)
    /// A `prewarm`: the host's idle connections once its warming dials ended.
    case prewarm(Handoff<Result<Int, HotPoolError>>)

    var isCancelRequested: Bool {
        switch self {
        case .get(let handoff): handoff.isCancelRequested
        case .execute(let pending): pending.handoff.isCancelRequested
        case .addresses(let handoff): handoff.isCancelRequested
        case .prewarm(let handoff): handoff.isCancelRequested
        }
    }

    func fail(_ error: HotPoolError) {
        switch self {
        case .get(let handoff): handoff.tryDeliver(.failure(error))
        case .execute(let pending): pending.handoff.tryDeliver(.failure(error))
        case .addresses(let handoff): handoff.tryDeliver(.failure(error))
        case .prewarm(let handoff): handoff.tryDeliver(.failure(error))
        }
    }
}

/// An `execute` waiting for its connection: the request is serialized once the connection
/// (and so its profile's headers) is known. A class, so a `Caller` is one word to move; made on
/// the caller's thread and handed to the reactor once, then touched there only.
package final class PendingExecute: @unchecked Sendable {
    let request: HTTPRequest
    let body: [UInt8]
    let timeout: Int64
    /// The body's bound (ns) once the head arrived; nil: `timeout` covers it.
    let bodyTimeout: Int64?
    /// The response body is decoded (`ConnectionIdentity.message`).
    let decompress: Bool
    let handoff: Handoff<Result<HotResponse, HotPoolError>>
    /// What it asked for, to ask again when a GOAWAY left its request unprocessed, or for a retry.
    let acquire: PoolStateMachine.AcquireRequest
    /// It was asked again once already (a GOAWAY left its request unprocessed).
    var retried = false
    /// When it is run again after a transient answer or failure; nil = never.
    let retryPolicy: RetryPolicy?
    /// The attempt under way or next (1 for the first).
    var attempt = 1
    /// How its last attempt ended, once it is retried (each attempt after the first says it).
    var priorAttempt: PoolStateMachine.PriorAttempt?
    /// The id it waits under, kept for its retries, so the caller's cancel reaches them.
    var waiterID: WaiterID?

    package init(request: HTTPRequest, body: [UInt8], timeout: Int64, bodyTimeout: Int64?, decompress: Bool,
                 handoff: Handoff<Result<HotResponse, HotPoolError>>, acquire: PoolStateMachine.AcquireRequest,
                 retryPolicy: RetryPolicy? = nil) {
        (self.request, self.body, self.timeout, self.handoff, self.acquire) = (request, body, timeout, handoff, acquire)
        (self.bodyTimeout, self.decompress, self.retryPolicy) = (bodyTimeout, decompress, retryPolicy)
    }
}

extension PoolStateMachine.AcquireRequest {
    /// A get of `host:port`, pinned to `pinnedIP` and `pinnedProxy` if given; whether the name is
    /// an IP literal is found here, so the machine parses no address.
    package init(host: String, port: Int, pinnedIP: String?, pinnedProxy: Proxy? = nil) {
        self.init(key: HostKey(name: host, port: port), pinnedIP: pinnedIP, pinnedProxy: pinnedProxy, nameIsAddress: ipFamily(host) != 0)
    }
}

/// The callers the driver answers, by id: those waiting (in the machine's queue, or for a dial of
/// their own), and the get made on the reactor thread itself (`acquireNow`), which waits in no
/// table and takes its answer at once. Each caller is taken out when it is answered, so none is
/// answered twice.
struct CallerRegistry {
    /// Who an answer is for.
    enum Answered {
        case waiting(Caller)
        case inline
    }

    private var waiting: [WaiterID: Caller] = [:]
    private var inline: WaiterID?
    private var inlineAnswer: Result<Lease, HotPoolError>?

    mutating func add(_ id: WaiterID, _ caller: Caller) {
        waiting[id] = caller
    }

    /// The caller `id` names, taken out of the registry (the inline get first: it is in no
    /// table); nil if none waits under it.
    mutating func take(_ id: WaiterID) -> Answered? {
        if id == inline { return .inline }
        return waiting.removeValue(forKey: id).map(Answered.waiting)
    }

    /// A get on the reactor thread begins; its answer, if it has one at once, is kept for `endInline`.
    mutating func beginInline(_ id: WaiterID) {
        inline = id
    }

    mutating func answerInline(_ answer: Result<Lease, HotPoolError>) {
        inlineAnswer = answer
    }

    var isInlineAnswered: Bool { inlineAnswer != nil }

    /// The inline get's answer, if it had one; the registry forgets it.
    mutating func endInline() -> Result<Lease, HotPoolError>? {
        defer { (inline, inlineAnswer) = (nil, nil) }
        return inlineAnswer
    }
}
