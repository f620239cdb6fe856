using System.Collections.Concurrent;
using System.Net.Sockets;

namespace OllamaContinuity.Http;

/// <summary>
/// Host:port pairs that the module's own HTTP pool must not reach: the simulated block of a failover drill. A
/// blocked request fails exactly like a refused TCP connection, so the failover path, the classifier, the circuit
/// breaker and the alerts all run as in a real outage. Only this process is affected.
/// </summary>
public sealed class OutboundBlocklist
{
    private readonly ConcurrentDictionary<string, byte> _blocked = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Blocks <paramref name="uri"/>'s host and port. Returns false when it was blocked already.</summary>
    public bool Block(Uri uri) => _blocked.TryAdd(Key(uri), 0);

    /// <summary>Lifts the block of <paramref name="uri"/>'s host and port. Returns false when it was not blocked.</summary>
    public bool Unblock(Uri uri) => _blocked.TryRemove(Key(uri), out _);

    public bool IsBlocked(Uri uri) => !_blocked.IsEmpty && _blocked.ContainsKey(Key(uri));

    public IReadOnlyList<string> Entries => _blocked.Keys.Order(StringComparer.Ordinal).ToArray();

    private static string Key(Uri uri) => uri.IdnHost + ":" + uri.Port;
}

/// <summary>Fails requests to blocked endpoints with a connection-refused error before any socket is used.</summary>
internal sealed class OutboundBlockHandler(OutboundBlocklist blocklist) : DelegatingHandler
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        request.RequestUri is { } uri && blocklist.IsBlocked(uri)
            ? Task.FromException<HttpResponseMessage>(new HttpRequestException(HttpRequestError.ConnectionError,
                $"{uri.IdnHost}:{uri.Port} is blocked by a simulated failover drill (connection refused)",
                new SocketException((int)SocketError.ConnectionRefused)))
            : base.SendAsync(request, cancellationToken);
}
