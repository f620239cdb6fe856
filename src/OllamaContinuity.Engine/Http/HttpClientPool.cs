using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;

namespace OllamaContinuity.Http;

/// <summary>Thrown by the connect callback when a TCP connect does not complete within the connect timeout.</summary>
public sealed class ConnectTimeoutException : IOException
{
    public ConnectTimeoutException(string endpoint, TimeSpan timeout)
        : base($"connect to {endpoint} timed out after {timeout.TotalSeconds:0.###} s")
    {
    }
}

/// <summary>
/// One pool of HTTP connections for the whole session, through <see cref="IHttpClientFactory"/> over a
/// <see cref="SocketsHttpHandler"/>. The connect timeout is set per request (<see cref="ConnectTimeoutOption"/>)
/// and enforced in the connect callback, so a blackholed host fails in the connect phase, clearly classified.
/// </summary>
public sealed class HttpClientPool : IDisposable
{
    public const string ClientName = "OllamaContinuity";

    /// <summary>The request option that carries the connect timeout to the connect callback.</summary>
    public static readonly HttpRequestOptionsKey<TimeSpan> ConnectTimeoutOption = new("OllamaContinuity.ConnectTimeout");

    private static readonly TimeSpan DefaultConnectTimeout = TimeSpan.FromSeconds(3);
    private static readonly string UserAgent = "OllamaContinuity/" + typeof(HttpClientPool).Assembly.GetName().Version?.ToString(3);
    private readonly ServiceProvider _services;
    private readonly IHttpClientFactory _factory;
    private readonly TimeProvider _time;
    private readonly Func<Socket>? _socketFactory;
    private readonly Lazy<HttpClient> _client;

    public HttpClientPool(TimeProvider? timeProvider = null, Func<Socket>? socketFactory = null)
    {
        _time = timeProvider ?? TimeProvider.System;
        _socketFactory = socketFactory;
        var services = new ServiceCollection();
        services.AddHttpClient(ClientName, c =>
            {
                // Timeouts are ours (per backend and per phase), not HttpClient's single one.
                c.Timeout = Timeout.InfiniteTimeSpan;
                c.DefaultRequestHeaders.UserAgent.ParseAdd(UserAgent);
            })
            .ConfigurePrimaryHttpMessageHandler(CreateHandler)
            // The drill's simulated block acts before the connection pool, so pooled connections are cut too.
            .AddHttpMessageHandler(() => new OutboundBlockHandler(Blocklist))
            // One long-lived handler; SocketsHttpHandler recycles connections itself (PooledConnectionLifetime).
            .SetHandlerLifetime(Timeout.InfiniteTimeSpan)
            // No logger is ever configured in this private container: without this, two no-op logging handlers wrap every request.
            .RemoveAllLoggers();
        _services = services.BuildServiceProvider();
        _factory = _services.GetRequiredService<IHttpClientFactory>();
        _client = new(CreateClient, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>Endpoints this pool refuses to reach (Start-FailoverDrill -BlockMethod Simulated); empty normally.</summary>
    public OutboundBlocklist Blocklist { get; } = new();

    /// <summary>An HttpClient over the shared handler; cheap, do not dispose the handler through it.</summary>
    public HttpClient CreateClient() => _factory.CreateClient(ClientName);

    /// <summary>
    /// The pool's one HttpClient, shared by every request of the engine. HttpClient is thread-safe and the handler
    /// lives as long as the pool, so this is what <see cref="CreateClient"/> per request amounts to, without building
    /// a client (and parsing its User-Agent) each time. Never dispose it.
    /// </summary>
    internal HttpClient Client => _client.Value;

    private SocketsHttpHandler CreateHandler() => new()
    {
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
        // Off: the failover core decompresses answers itself so that it can bound the ratio (a gzip bomb); see Failover/Streaming/BoundedBody.
        AutomaticDecompression = DecompressionMethods.None,
        MaxConnectionsPerServer = 256,
        // Never send credentials to a redirect target, and never follow a redirect to another scheme silently.
        AllowAutoRedirect = false,
        ConnectCallback = ConnectAsync,
    };

    private async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var timeout = context.InitialRequestMessage.Options.TryGetValue(ConnectTimeoutOption, out var t) ? t : DefaultConnectTimeout;
        using var timeoutCts = new CancellationTokenSource(timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeoutCts.Token);
        var socket = _socketFactory?.Invoke() ?? new Socket(SocketType.Stream, ProtocolType.Tcp);
        socket.NoDelay = true;
        try
        {
            await socket.ConnectAsync(context.DnsEndPoint, linked.Token).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch (OperationCanceledException) when (timeoutCts.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new ConnectTimeoutException($"{context.DnsEndPoint.Host}:{context.DnsEndPoint.Port}", timeout);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public void Dispose() => _services.Dispose();
}
