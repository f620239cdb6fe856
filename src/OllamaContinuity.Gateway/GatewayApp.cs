using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using OllamaContinuity.Failover;
using OllamaContinuity.Gateway.Formats;

namespace OllamaContinuity.Gateway;

/// <summary>Builds the gateway: Kestrel with its limits, client tokens, rate limits, and the API endpoints over one engine.</summary>
internal static class GatewayApp
{
    public const string ClientKey = "oc.client";
    public const string RequestIdKey = "oc.request-id";
    public const string StartedKey = "oc.started";
    private static readonly string Version = typeof(GatewayApp).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    /// <param name="controlSocket">The owner-only control socket to listen on as well (see <see cref="ControlSocket"/>), or null.</param>
    public static WebApplication Build(GatewayOptions options, ClientTokens tokens, FailoverEngine engine, BackendPlan plan, LogLevel logLevel = LogLevel.Warning,
        string? controlSocket = null)
    {
        options.Validate(tokens);
        if (controlSocket is not null && OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("The control socket is Linux and macOS only.");
        }

        if (controlSocket is not null && !OperatingSystem.IsWindows())
        {
            try
            {
                ControlSocket.Prepare(controlSocket);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The gateway serves without it (Get-AiGateway then reads the counts with a client token).
                Console.Error.WriteLine($"OllamaContinuity.Gateway: no control socket at {controlSocket}: {e.Message}");
                controlSocket = null;
            }
        }

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(logLevel);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = options.MaxBodyBytes;
            k.Limits.RequestHeadersTimeout = options.RequestHeadersTimeout;
            k.Limits.MinRequestBodyDataRate = new MinDataRate(options.MinBodyBytesPerSecond, options.MinBodyRateGrace);
            k.Limits.MaxRequestHeadersTotalSize = 32 * 1024;
            k.Limits.MaxRequestHeaderCount = 64;
            k.Limits.MaxRequestLineSize = 8 * 1024;
            k.Limits.KeepAliveTimeout = TimeSpan.FromMinutes(2);
            k.Listen(options.Bind, options.Port);
            if (controlSocket is not null)
            {
                k.ListenUnixSocket(controlSocket, l => l.Use(next => connection =>
                {
                    connection.Items[ControlSocket.ConnectionKey] = true;
                    return next(connection);
                }));
            }
        });

        // Kestrel's half of GatewayOptions.InlineIo (the runtime's half is set by the gateway process before any socket).
        builder.WebHost.UseSockets(o => o.UnsafePreferInlineScheduling = options.InlineIo);

        // Started by systemd (Install-AiGateway's Type=notify unit) or the Windows Service Control Manager: tell it when
        // the gateway listens and when it stops. Both detect their manager and do nothing otherwise.
        builder.Services.AddSystemd();
        builder.Services.AddWindowsService(o => o.ServiceName = GatewayServicePlanner.WindowsServiceName);

        var metrics = new GatewayMetrics();
        builder.Services.AddSingleton(metrics);
        builder.Services.AddRateLimiter(r =>
        {
            r.GlobalLimiter = PartitionedRateLimiter.CreateChained(
                // Chat requests served at once, across all clients.
                PartitionedRateLimiter.Create<HttpContext, string>(ctx => IsChat(ctx.Request.Path)
                    ? RateLimitPartition.GetConcurrencyLimiter("chat", _ => new ConcurrencyLimiterOptions { PermitLimit = options.MaxConcurrentRequests, QueueLimit = 0 })
                    : RateLimitPartition.GetNoLimiter("other")),
                // Requests per minute, per client token.
                PartitionedRateLimiter.Create<HttpContext, string>(ctx => ctx.Items[ClientKey] is ClientToken t
                    ? RateLimitPartition.GetFixedWindowLimiter("token:" + t.Name, _ => new FixedWindowRateLimiterOptions
                    {
                        PermitLimit = t.RatePerMinute ?? options.RatePerMinute, Window = TimeSpan.FromMinutes(1), QueueLimit = 0,
                    })
                    : RateLimitPartition.GetNoLimiter("anonymous")));
            r.OnRejected = async (context, ct) =>
            {
                var ctx = context.HttpContext;
                var perClient = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var retry);
                metrics.Rejected(perClient ? "rate_limited" : "concurrency");
                if (perClient)
                {
                    ctx.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retry.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
                }
                else
                {
                    ctx.Response.Headers.RetryAfter = "1";
                }

                await WriteErrorAsync(ctx, FormatFor(ctx.Request.Path), 429,
                    perClient ? "This client token has sent too many requests; wait and retry." : "The gateway is serving as many requests as it allows; retry shortly.",
                    perClient ? "rate_limit_exceeded" : "too_many_concurrent_requests").ConfigureAwait(false);
            };
        });

        var app = builder.Build();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("OllamaContinuity.Gateway");
        var handler = new ChatHandler(engine, plan, options, metrics, logger);
        var started = DateTimeOffset.UtcNow;
        if (controlSocket is not null && !OperatingSystem.IsWindows())
        {
            // Bound in an owner-only directory; the file itself becomes owner-only at once, and goes with the gateway.
            app.Lifetime.ApplicationStarted.Register(() => ControlSocket.Restrict(controlSocket));
            app.Lifetime.ApplicationStopped.Register(() => ControlSocket.Remove(controlSocket));
        }

        if (GatewayTimings.Current is { } timings)
        {
            app.Lifetime.ApplicationStopped.Register(timings.Write);
        }

        // Every response carries a request id; anything unexpected becomes a JSON 500, and the gateway goes on.
        app.Use(async (ctx, next) =>
        {
            if (GatewayTimings.Current is not null)
            {
                ctx.Items[StartedKey] = Stopwatch.GetTimestamp();
            }

            var id = Guid.NewGuid().ToString("n");
            ctx.Items[RequestIdKey] = id;
            ctx.Response.Headers[ChatHandler.RequestIdHeader] = id;
            try
            {
                await next(ctx).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException || !ctx.RequestAborted.IsCancellationRequested)
            {
                logger.LogError("Request {RequestId} failed: {Type}: {Message}", id, e.GetType().Name, e.Message);
                if (!ctx.Response.HasStarted)
                {
                    ctx.Response.Clear();
                    ctx.Response.Headers[ChatHandler.RequestIdHeader] = id;
                    await WriteErrorAsync(ctx, FormatFor(ctx.Request.Path), 500, "The gateway failed to serve the request (see its log, request id " + id + ").", "internal_error").ConfigureAwait(false);
                }
            }
        });

        // Client tokens: every request but /healthz. The control socket needs none, and serves only status.
        app.Use(async (ctx, next) =>
        {
            if (controlSocket is not null && ControlSocket.IsControl(ctx))
            {
                if (ControlSocket.Allows(ctx.Request))
                {
                    await next(ctx).ConfigureAwait(false);
                    return;
                }

                metrics.Rejected("control_socket");
                await WriteErrorAsync(ctx, FormatFor(ctx.Request.Path), 403,
                    "The control socket serves only GET /healthz, /v1/gateway/status and /metrics; applications use the gateway's TCP address with a client token.",
                    "control_socket_read_only").ConfigureAwait(false);
                return;
            }

            if (ctx.Request.Path.Equals("/healthz", StringComparison.Ordinal))
            {
                await next(ctx).ConfigureAwait(false);
                return;
            }

            var presented = PresentedToken(ctx.Request);
            var client = tokens.Find(presented);
            if (client is null)
            {
                metrics.Rejected("unauthorized");
                ctx.Response.Headers.WWWAuthenticate = "Bearer realm=\"OllamaContinuity gateway\"";
                await WriteErrorAsync(ctx, FormatFor(ctx.Request.Path), 401,
                    presented is null ? "A client token is required: send 'Authorization: Bearer <token>' or 'x-api-key: <token>'." : "The client token is not valid.",
                    "invalid_api_key").ConfigureAwait(false);
                return;
            }

            ctx.Items[ClientKey] = client;
            await next(ctx).ConfigureAwait(false);
        });
        app.UseRateLimiter();

        app.MapPost("/v1/chat/completions", ctx => handler.HandleAsync(ctx, OpenAIFormat.Instance));
        app.MapPost("/v1/messages", ctx => handler.HandleAsync(ctx, AnthropicFormat.Instance));
        app.MapPost("/api/chat", ctx => handler.HandleAsync(ctx, OllamaFormat.Chat));
        app.MapPost("/api/generate", ctx => handler.HandleAsync(ctx, OllamaFormat.Generate));
        app.MapGet("/v1/models", ctx => WriteJsonAsync(ctx, 200, w =>
        {
            // OpenAI's list shape, with the fields Anthropic's SDK reads as well.
            w.WriteString("object", "list");
            w.WriteStartArray("data");
            foreach (var m in handler.Models)
            {
                w.WriteStartObject();
                w.WriteString("id", m);
                w.WriteString("object", "model");
                w.WriteString("type", "model");
                w.WriteString("display_name", m);
                w.WriteNumber("created", started.ToUnixTimeSeconds());
                w.WriteString("created_at", started.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture));
                w.WriteString("owned_by", "ollamacontinuity");
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteBoolean("has_more", false);
            w.WriteString("first_id", handler.Models[0]);
            w.WriteString("last_id", handler.Models[^1]);
        }));
        app.MapGet("/api/tags", ctx => WriteJsonAsync(ctx, 200, w =>
        {
            w.WriteStartArray("models");
            foreach (var m in handler.Models)
            {
                w.WriteStartObject();
                w.WriteString("name", m);
                w.WriteString("model", m);
                w.WriteString("modified_at", started.UtcDateTime.ToString("O", System.Globalization.CultureInfo.InvariantCulture));
                w.WriteNumber("size", 0);
                w.WriteString("digest", "");
                w.WriteEndObject();
            }

            w.WriteEndArray();
        }));
        app.MapGet("/api/version", ctx => WriteJsonAsync(ctx, 200, w => w.WriteString("version", Version)));
        app.MapGet("/healthz", ctx => WriteJsonAsync(ctx, 200, w => w.WriteString("status", "ok")));
        app.MapGet("/metrics", async ctx =>
        {
            ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await ctx.Response.WriteAsync(metrics.Render(engine.GetCircuits()), ctx.RequestAborted).ConfigureAwait(false);
        });
        app.MapGet("/v1/gateway/status", ctx => WriteJsonAsync(ctx, 200, w =>
        {
            w.WriteString("status", "ok");
            w.WriteString("version", Version);
            w.WriteNumber("pid", Environment.ProcessId);
            w.WriteString("startedAt", started);
            w.WriteNumber("requests", metrics.TotalRequests);
            w.WriteNumber("failovers", metrics.TotalFailovers);
            w.WriteNumber("inFlight", metrics.InFlight);
            w.WriteStartArray("circuits");
            foreach (var c in engine.GetCircuits())
            {
                w.WriteStartObject();
                w.WriteString("endpoint", c.Endpoint);
                w.WriteString("state", c.State);
                w.WriteEndObject();
            }

            w.WriteEndArray();
        }));
        app.MapFallback(ctx => WriteErrorAsync(ctx, FormatFor(ctx.Request.Path), 404, $"There is no {ctx.Request.Method} {Truncate(ctx.Request.Path.Value)} on this gateway.", "not_found"));
        return app;
    }

    /// <summary>The address Kestrel listens on once started (the real port when 0 was asked).</summary>
    public static Uri ListeningUri(WebApplication app)
    {
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
            .First(a => !a.Contains("://unix:", StringComparison.OrdinalIgnoreCase));
        return new Uri(address.Replace("[::]", "[::1]", StringComparison.Ordinal).Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal));
    }

    public static bool IsChat(PathString path) =>
        path.Equals("/v1/chat/completions", StringComparison.Ordinal) || path.Equals("/v1/messages", StringComparison.Ordinal) ||
        path.Equals("/api/chat", StringComparison.Ordinal) || path.Equals("/api/generate", StringComparison.Ordinal);

    /// <summary>Errors in the shape the caller's SDK reads: Anthropic's on /v1/messages, Ollama's on /api/*, OpenAI's elsewhere.</summary>
    public static ApiFormat FormatFor(PathString path) =>
        path.StartsWithSegments("/v1/messages", StringComparison.Ordinal) ? AnthropicFormat.Instance
        : path.StartsWithSegments("/api/generate", StringComparison.Ordinal) ? OllamaFormat.Generate
        : path.StartsWithSegments("/api", StringComparison.Ordinal) ? OllamaFormat.Chat
        : OpenAIFormat.Instance;

    public static async Task WriteErrorAsync(HttpContext ctx, ApiFormat format, int status, string message, string? code)
    {
        if (ctx.Response.HasStarted)
        {
            return;
        }

        var body = ApiFormat.ErrorBody(format, status, message, code);
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json; charset=utf-8";
        ctx.Response.ContentLength = body.Length;
        await ctx.Response.Body.WriteAsync(body, CancellationToken.None).ConfigureAwait(false);
    }

    private static string? PresentedToken(HttpRequest request)
    {
        var auth = request.Headers.Authorization.ToString();
        if (auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return auth[7..].Trim();
        }

        var key = request.Headers["x-api-key"].ToString();
        return key.Length > 0 ? key.Trim() : null;
    }

    private static async Task WriteJsonAsync(HttpContext ctx, int status, Action<Utf8JsonWriter> body)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json; charset=utf-8";
        await using var w = new Utf8JsonWriter(ctx.Response.BodyWriter);
        w.WriteStartObject();
        body(w);
        w.WriteEndObject();
        await w.FlushAsync(ctx.RequestAborted).ConfigureAwait(false);
    }

    private static string Truncate(string? s) => s is null ? "" : s.Length <= 100 ? s : s[..100] + "...";

    /// <summary>Writes the state file Get-AiGateway reads; removed when the gateway stops.</summary>
    public static void WriteStateFile(string path, Uri uri, GatewayOptions options, string? controlSocket = null)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object?>
        {
            ["pid"] = Environment.ProcessId,
            ["url"] = uri.ToString().TrimEnd('/'),
            ["bind"] = options.Bind.ToString(),
            ["port"] = uri.Port,
            ["tokensFile"] = options.TokensFile is null ? null : Path.GetFullPath(options.TokensFile),
            // Only when it listens (a gateway that could not make it serves without it).
            ["controlSocket"] = controlSocket is not null && File.Exists(controlSocket) ? controlSocket : null,
            ["startedAt"] = DateTimeOffset.UtcNow,
            ["processStartTime"] = Process.GetCurrentProcess().StartTime.ToUniversalTime(),
        });
        OwnerOnlyFile.WriteAllBytesAtomic(path, json);
    }

    internal static bool IsLoopback(IPAddress a) => IPAddress.IsLoopback(a);
}
