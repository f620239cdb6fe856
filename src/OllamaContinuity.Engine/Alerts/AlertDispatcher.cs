using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using OllamaContinuity.Failover;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Alerts;

/// <summary>One alert sent (or not) to one channel: the record a drill checks.</summary>
public sealed class AlertDelivery
{
    public DateTimeOffset Timestamp { get; init; }
    public ContinuityEventKind Kind { get; init; }
    /// <summary>Webhook or SystemLog.</summary>
    public required string Channel { get; init; }
    /// <summary>Where it went, redacted (scheme://host/*** for a webhook).</summary>
    public string? Target { get; init; }
    public bool Succeeded { get; init; }
    public int? StatusCode { get; init; }
    public string? Error { get; init; }
    public string? Endpoint { get; init; }
    public string? Workflow { get; init; }

    public override string ToString() => $"{Kind} {Channel} {(Succeeded ? "delivered" : "failed")}";
}

/// <summary>
/// Turns the engine's state changes into alerts: a webhook POST and a system-log line. Rate-limited so that an
/// outage sends one alert when it starts and one when it ends: a circuit that opens again while its outage is
/// still on (a failed half-open probe) sends nothing, half-open sends nothing, and 'all backends failed' is sent at
/// most once per <see cref="AlertSettings.RepeatInterval"/>. Delivery runs in the background and never throws
/// into a request; every attempt is recorded (<see cref="Deliveries"/> and the owner-only delivery log).
/// </summary>
public sealed class AlertDispatcher
{
    private static readonly JsonSerializerOptions RecordJson = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        PropertyNameCaseInsensitive = true,
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() },
    };

    private readonly object _lock = new();
    private readonly HashSet<string> _inOutage = new(StringComparer.Ordinal);
    private readonly Dictionary<ContinuityEventKind, DateTimeOffset> _lastSent = [];
    private readonly ConcurrentQueue<AlertDelivery> _deliveries = new();
    private readonly ConcurrentDictionary<Task, byte> _pending = new();
    private readonly TimeProvider _time;
    private readonly Func<AlertSettingsResolution> _resolve;
    private readonly Func<HttpClient> _http;
    private readonly ISystemLog? _systemLog;
    private readonly Func<string?> _recordPath;
    private readonly Func<string?>? _sharedStatePath;

    /// <param name="settings">The settings in force (read on every alert, so a change applies at once).</param>
    /// <param name="http">The client for webhook POSTs.</param>
    /// <param name="systemLog">The system log; null writes none.</param>
    /// <param name="recordPath">The delivery log (JSON lines); null returns no file.</param>
    /// <param name="sharedStatePath">
    /// A small state file shared by every process of the user (scheduled tasks are new processes): an outage that
    /// another process has already reported within <see cref="AlertSettings.RepeatInterval"/> is not reported
    /// again. The default value is null: this process only.
    /// </param>
    public AlertDispatcher(TimeProvider time, Func<AlertSettings?> settings, Func<HttpClient> http, ISystemLog? systemLog, Func<string?> recordPath,
        Func<string?>? sharedStatePath = null)
        : this(time, () => new AlertSettingsResolution(settings(), []), http, systemLog, recordPath, sharedStatePath)
    {
    }

    /// <param name="resolve">The settings in force with their problems (<see cref="AlertSettingsStore.Resolve"/>), read on every event.</param>
    public AlertDispatcher(TimeProvider time, Func<AlertSettingsResolution> resolve, Func<HttpClient> http, ISystemLog? systemLog, Func<string?> recordPath,
        Func<string?>? sharedStatePath = null)
    {
        _sharedStatePath = sharedStatePath;
        _time = time;
        _resolve = resolve;
        _http = http;
        _systemLog = systemLog;
        _recordPath = recordPath;
    }

    /// <summary>Every delivery attempt of this process, oldest first.</summary>
    public IReadOnlyList<AlertDelivery> Deliveries => _deliveries.ToArray();

    /// <summary>Subscribed to <see cref="FailoverEngine.StateChanged"/>: decides whether the event is worth an alert and sends it in the background.</summary>
    public void OnEvent(ContinuityEvent e)
    {
        // Read on every event, so a change applies at once; a damaged setting is loud on every event that alerts.
        var resolution = e.Kind == ContinuityEventKind.CircuitHalfOpened ? null : _resolve();
        var damaged = resolution?.Problems.Where(p => p.Damaged).ToArray() ?? [];
        if (resolution?.Summary is { } problem)
        {
            FailoverContext.Observer?.OnWarning($"This {AlertPayload.Title(e.Kind).ToLowerInvariant()} alert may reach nobody: {problem}");
        }

        var local = ShouldSend(e);
        var shared = _sharedStatePath?.Invoke();
        // A circuit that opens again in this process's outage still refreshes the shared record (the outage goes on).
        if (!local && !(shared is not null && e.Kind == ContinuityEventKind.CircuitOpened))
        {
            return;
        }

        var settings = resolution?.Settings;
        if (damaged.Length == 0 && (settings is null || (settings.WebhookUri is null && !settings.SystemLog)))
        {
            return;
        }

        var task = Task.Run(async () =>
        {
            if ((shared is null || SharedAllows(shared, e, settings?.RepeatInterval ?? TimeSpan.FromMinutes(15))) && local)
            {
                // The delivery record says what could not be sent, for Get-AiContinuityAlert -Delivery and the drill.
                foreach (var d in damaged)
                {
                    Record(new AlertDelivery
                    {
                        Timestamp = _time.GetUtcNow(), Kind = e.Kind, Channel = "Settings", Target = d.Path, Succeeded = false, Error = d.Message,
                        Endpoint = e.Endpoint, Workflow = e.Workflow,
                    });
                }

                if (settings is not null)
                {
                    await DeliverAsync(e, settings).ConfigureAwait(false);
                }
            }
        });
        _pending.TryAdd(task, 0);
        task.ContinueWith(t => _pending.TryRemove(t, out _), TaskScheduler.Default);
    }

    /// <summary>Waits for the alerts in flight (the drill and tests call this before they check the record).</summary>
    public async Task FlushAsync(TimeSpan timeout)
    {
        var all = Task.WhenAll(_pending.Keys);
        await Task.WhenAny(all, Task.Delay(timeout)).ConfigureAwait(false);
    }

    internal bool ShouldSend(ContinuityEvent e)
    {
        var key = e.Endpoint ?? "";
        lock (_lock)
        {
            switch (e.Kind)
            {
                case ContinuityEventKind.CircuitOpened:
                    return _inOutage.Add(key);
                case ContinuityEventKind.CircuitClosed:
                    return _inOutage.Remove(key);
                case ContinuityEventKind.CircuitHalfOpened:
                    return false;
                case ContinuityEventKind.AllBackendsFailed:
                    var interval = _resolve().Settings?.RepeatInterval ?? TimeSpan.FromMinutes(15);
                    if (_lastSent.TryGetValue(e.Kind, out var last) && e.Timestamp - last < interval)
                    {
                        return false;
                    }

                    _lastSent[e.Kind] = e.Timestamp;
                    return true;
                default:
                    return true; // an operator's own action: always worth a line
            }
        }
    }

    /// <summary>
    /// The cross-process part of the rate limit, under the state file's lock: endpoint (or 'all backends failed') →
    /// when it was last seen failing. Entries older than <paramref name="interval"/> are forgotten, so an outage whose
    /// end nobody saw does not silence the next one. A state file that cannot be used never blocks an alert.
    /// </summary>
    internal static bool SharedAllows(string path, ContinuityEvent e, TimeSpan interval)
    {
        var key = e.Kind == ContinuityEventKind.AllBackendsFailed ? "(all backends failed)" : e.Endpoint ?? "";
        try
        {
            return Contingency.StateFile.Update(path, worldReadable: false, bytes =>
            {
                Dictionary<string, DateTimeOffset> seen;
                try
                {
                    seen = bytes is { Length: > 0 } ? JsonSerializer.Deserialize<Dictionary<string, DateTimeOffset>>(bytes) ?? [] : [];
                }
                catch (JsonException)
                {
                    seen = [];
                }

                foreach (var stale in seen.Where(kv => e.Timestamp - kv.Value >= interval).Select(kv => kv.Key).ToArray())
                {
                    seen.Remove(stale);
                }

                bool allow;
                switch (e.Kind)
                {
                    case ContinuityEventKind.CircuitOpened:
                        allow = !seen.ContainsKey(key);
                        seen[key] = e.Timestamp;
                        break;
                    case ContinuityEventKind.CircuitClosed:
                        allow = seen.Remove(key);
                        break;
                    case ContinuityEventKind.AllBackendsFailed:
                        allow = !seen.ContainsKey(key);
                        if (allow)
                        {
                            seen[key] = e.Timestamp;
                        }

                        break;
                    default:
                        return ((byte[]?)null, true);
                }

                return (JsonSerializer.SerializeToUtf8Bytes(seen), allow);
            });
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            return true; // not a regular file, too large, locked for too long: alert rather than stay silent
        }
    }

    private async Task DeliverAsync(ContinuityEvent e, AlertSettings settings)
    {
        if (settings.WebhookUri is { } uri)
        {
            Record(await PostAsync(e, settings, uri).ConfigureAwait(false));
        }

        if (settings.SystemLog && _systemLog is not null)
        {
            string? error;
            try
            {
                using var cts = new CancellationTokenSource(settings.Timeout);
                error = await _systemLog.WriteAsync(AlertPayload.Severity(e.Kind), AlertPayload.Message(e), cts.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                error = ex.Message;
            }

            Record(new AlertDelivery
            {
                Timestamp = _time.GetUtcNow(), Kind = e.Kind, Channel = "SystemLog", Target = _systemLog.Target, Succeeded = error is null, Error = error,
                Endpoint = e.Endpoint, Workflow = e.Workflow,
            });
        }
    }

    private async Task<AlertDelivery> PostAsync(ContinuityEvent e, AlertSettings settings, Uri uri)
    {
        int? status = null;
        string? error = null;
        try
        {
            using var cts = new CancellationTokenSource(settings.Timeout);
            using var content = new StringContent(AlertPayload.Build(e, settings.Format), Encoding.UTF8);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
            using var response = await _http().PostAsync(uri, content, cts.Token).ConfigureAwait(false);
            status = (int)response.StatusCode;
            if (!response.IsSuccessStatusCode)
            {
                error = $"the webhook answered HTTP {status}";
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Exception texts can carry the URL (its path is the secret): only the type and a scrubbed message.
            error = ex.GetType().Name + ": " + Redact.Scrub(ex.Message, uri.ToString(), uri.PathAndQuery.Length >= 4 ? uri.PathAndQuery : null);
        }

        return new AlertDelivery
        {
            Timestamp = _time.GetUtcNow(), Kind = e.Kind, Channel = "Webhook", Target = Redact.SecretUrl(uri), Succeeded = error is null,
            StatusCode = status, Error = error, Endpoint = e.Endpoint, Workflow = e.Workflow,
        };
    }

    /// <summary>Reads a delivery log back (every process of the user), oldest first; damaged lines are skipped and reported to <paramref name="onProblem"/>.</summary>
    public static IEnumerable<AlertDelivery> ReadRecord(string path, DateTimeOffset? since = null, Action<JsonLineProblem>? onProblem = null)
    {
        foreach (var d in JsonLines.Read(path, e => e.Deserialize<AlertDelivery>(RecordJson), onProblem))
        {
            if (since is null || d.Timestamp >= since)
            {
                yield return d;
            }
        }
    }

    private void Record(AlertDelivery d)
    {
        _deliveries.Enqueue(d);
        if (_recordPath() is { } path)
        {
            var line = JsonSerializer.SerializeToUtf8Bytes(d, RecordJson);
            _ = RequestLog.AppendAsync(path, [.. line, (byte)'\n']).GetAwaiter().GetResult();
        }
    }
}
