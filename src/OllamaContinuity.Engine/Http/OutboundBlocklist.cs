using System.Collections.Immutable;
using System.Net.Sockets;

namespace OllamaContinuity.Http;

/// <summary>
/// Host:port pairs that the module's own HTTP pool must not reach: the simulated block of a failover drill. A
/// blocked request fails exactly like a refused TCP connection, so the failover path, the classifier, the circuit
/// breaker and the alerts all run as in a real outage. Only this process is affected.
/// </summary>
public sealed class OutboundBlocklist
{
    // Read on every request: an immutable set behind a volatile field costs one read when nothing is blocked.
    private ImmutableHashSet<string> _blocked = ImmutableHashSet.Create<string>(StringComparer.OrdinalIgnoreCase);

    /// <summary>Blocks <paramref name="uri"/>'s host and port. Returns false when it was blocked already.</summary>
    public bool Block(Uri uri)
    {
        var key = Key(uri);
        var added = false;
        ImmutableInterlocked.Update(ref _blocked, set => (added = !set.Contains(key)) ? set.Add(key) : set);
        return added;
    }

    /// <summary>Lifts the block of <paramref name="uri"/>'s host and port. Returns false when it was not blocked.</summary>
    public bool Unblock(Uri uri)
    {
        var key = Key(uri);
        var removed = false;
        ImmutableInterlocked.Update(ref _blocked, set => (removed = set.Contains(key)) ? set.Remove(key) : set);
        return removed;
    }

    public bool IsBlocked(Uri uri)
    {
        var set = Volatile.Read(ref _blocked);
        return set.Count != 0 && set.Contains(Key(uri));
    }

    public IReadOnlyList<string> Entries => Volatile.Read(ref _blocked).Order(StringComparer.Ordinal).ToArray();

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
