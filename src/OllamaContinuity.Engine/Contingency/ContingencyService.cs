using System.Text.Json;
using System.Text.Json.Serialization;
using OllamaContinuity.Failover;

namespace OllamaContinuity.Contingency;

/// <summary>
/// Manual, per-workflow contingency in three scopes (Process in memory; User and Machine in a JSON state file each,
/// see <see cref="StatePaths"/>), read by the failover client through <see cref="IContingencySource"/>. Machine
/// wins over User, User over Process, for the reported source; approval is required when any matching entry asks.
/// </summary>
public sealed class ContingencyService : IContingencySource
{
    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        WriteIndented = true,
    };

    private static readonly ContinuityScope[] EvaluationOrder = [ContinuityScope.Machine, ContinuityScope.User, ContinuityScope.Process];
    private readonly object _processLock = new();
    private readonly Func<ContinuityScope, string> _pathOf;
    private readonly Dictionary<string, (DateTime Mtime, long Length, ContingencyEntry[] Entries)> _cache = new(StringComparer.Ordinal);
    private ContingencyState _process = new();

    /// <param name="time">The clock for Since, Until and expiry. The default value is <see cref="TimeProvider.System"/>.</param>
    /// <param name="pathOf">The state file of a persisted scope. The default value is <see cref="StatePaths.ContingencyFile"/>.</param>
    public ContingencyService(TimeProvider? time = null, Func<ContinuityScope, string>? pathOf = null)
    {
        Time = time ?? TimeProvider.System;
        _pathOf = pathOf ?? StatePaths.ContingencyFile;
    }

    /// <summary>The one the session's engine reads (see <see cref="ContinuityRuntime"/>).</summary>
    public static ContingencyService Default { get; } = new();

    public TimeProvider Time { get; }

    /// <summary>Raised after Enable/Disable changed something (alerts hook in here).</summary>
    public event Action<ContinuityEvent>? Changed;

    public string? PathOf(ContinuityScope scope) => scope == ContinuityScope.Process ? null : _pathOf(scope);

    public ContingencyDecision? Evaluate(string? workflow, DateTimeOffset now)
    {
        ContingencyDecision? first = null;
        var approval = false;
        foreach (var scope in EvaluationOrder)
        {
            foreach (var e in ReadEntries(scope))
            {
                if (!e.IsActive(now) || !e.Matches(workflow))
                {
                    continue;
                }

                approval |= e.RequireApproval;
                first ??= new ContingencyDecision(scope.ToString(), e.Reason ?? "manual contingency", e.Since, e.Until);
            }
        }

        return first is null ? null : first with { RequireApproval = approval };
    }

    /// <summary>The active entries of a scope (expired ones are left out).</summary>
    public IReadOnlyList<ContingencyStatus> List(ContinuityScope scope)
    {
        var now = Time.GetUtcNow();
        return ReadEntries(scope).Where(e => e.IsActive(now)).Select(e => ContingencyStatus.From(e, scope.ToString(), true, false, PathOf(scope))).ToArray();
    }

    /// <summary>Turns contingency on for <paramref name="workflows"/> (null or empty: every workflow). Idempotent per workflow.</summary>
    public IReadOnlyList<ContingencyStatus> Enable(ContinuityScope scope, IReadOnlyList<string>? workflows, string? reason, TimeSpan? duration, bool requireApproval)
    {
        if (duration is { } d && d <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(duration), "The duration must be positive.");
        }

        var now = Time.GetUtcNow();
        var targets = workflows is { Count: > 0 } ? workflows.Select(Normalize).Distinct(StringComparer.OrdinalIgnoreCase).ToArray() : [null];
        var by = $"{Environment.UserName}@{Environment.MachineName}";
        var results = Modify(scope, state =>
        {
            var changed = false;
            var list = new List<(ContingencyEntry, bool)>();
            state.Entries.RemoveAll(e => !e.IsActive(now));
            foreach (var w in targets)
            {
                var existing = state.Entries.FirstOrDefault(e => e.SameWorkflow(w));
                var until = duration is { } dd ? now + dd : (DateTimeOffset?)null;
                if (existing is not null && existing.Reason == reason && existing.RequireApproval == requireApproval && existing.Until == until)
                {
                    list.Add((existing, false));
                    continue;
                }

                var entry = new ContingencyEntry
                {
                    Workflow = w,
                    Reason = reason,
                    Since = existing?.Since ?? now,
                    Until = until,
                    RequireApproval = requireApproval,
                    EnabledBy = by,
                };
                state.Entries.RemoveAll(e => e.SameWorkflow(w));
                state.Entries.Add(entry);
                list.Add((entry, true));
                changed = true;
            }

            return (changed, list);
        });

        var output = results.Select(r => ContingencyStatus.From(r.Item1, scope.ToString(), true, r.Item2, PathOf(scope))).ToArray();
        foreach (var o in output.Where(o => o.Changed))
        {
            Raise(new ContinuityEvent(ContinuityEventKind.ContingencyEnabled, now, null,
                $"contingency enabled ({scope}){(reason is null ? "" : ": " + reason)}", o.Until, o.Workflow));
        }

        return output;
    }

    /// <summary>Turns manual contingency off for <paramref name="workflows"/> (null or empty: every entry of the scope).</summary>
    public IReadOnlyList<ContingencyStatus> Disable(ContinuityScope scope, IReadOnlyList<string>? workflows)
    {
        var now = Time.GetUtcNow();
        var all = workflows is not { Count: > 0 };
        var results = Modify(scope, state =>
        {
            var list = new List<(ContingencyEntry, bool)>();
            var expired = state.Entries.RemoveAll(e => !e.IsActive(now)) > 0;
            if (all)
            {
                list.AddRange(state.Entries.Select(e => (e, true)));
                state.Entries.Clear();
            }
            else
            {
                foreach (var w in workflows!.Select(Normalize).Distinct(StringComparer.OrdinalIgnoreCase))
                {
                    var existing = state.Entries.FirstOrDefault(e => e.SameWorkflow(w));
                    if (existing is null)
                    {
                        list.Add((new ContingencyEntry { Workflow = w, Since = now }, false));
                    }
                    else
                    {
                        state.Entries.Remove(existing);
                        list.Add((existing, true));
                    }
                }
            }

            return (expired || list.Any(l => l.Item2), list);
        });

        var output = results.Select(r => ContingencyStatus.From(r.Item1, scope.ToString(), false, r.Item2, PathOf(scope)) is var s && !r.Item2
            ? new ContingencyStatus { Source = s.Source, Workflow = s.Workflow, Active = false, Changed = false, Path = s.Path }
            : s).ToArray();
        foreach (var o in output.Where(o => o.Changed))
        {
            Raise(new ContinuityEvent(ContinuityEventKind.ContingencyDisabled, now, null, $"contingency disabled ({scope})", null, o.Workflow));
        }

        return output;
    }

    /// <summary>'*' is the entry for every workflow (stored as null, so it also covers requests without a workflow).</summary>
    private static string? Normalize(string w) => w.Trim() is "*" or "" ? null : w.Trim();

    private void Raise(ContinuityEvent e)
    {
        if (Changed is not { } handlers)
        {
            return;
        }

        foreach (Action<ContinuityEvent> h in handlers.GetInvocationList())
        {
            try
            {
                h(e);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                System.Diagnostics.Debug.WriteLine("Changed handler failed: " + ex.GetType().Name);
            }
        }
    }

    private List<(ContingencyEntry, bool)> Modify(ContinuityScope scope, Func<ContingencyState, (bool Changed, List<(ContingencyEntry, bool)> Result)> change)
    {
        if (scope == ContinuityScope.Process)
        {
            lock (_processLock)
            {
                var copy = new ContingencyState { Entries = [.. _process.Entries] };
                var (changed, result) = change(copy);
                if (changed)
                {
                    _process = copy;
                }

                return result;
            }
        }

        var path = _pathOf(scope);
        return StateFile.Update(path, worldReadable: scope == ContinuityScope.Machine, bytes =>
        {
            var state = Parse(bytes, path);
            var (changed, result) = change(state);
            return (changed ? JsonSerializer.SerializeToUtf8Bytes(state, Json) : null, result);
        });
    }

    private static ContingencyState Parse(byte[]? bytes, string path)
    {
        if (bytes is null || bytes.Length == 0)
        {
            return new ContingencyState();
        }

        try
        {
            return JsonSerializer.Deserialize<ContingencyState>(bytes, Json) ?? new ContingencyState();
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"The contingency state file {path} is not valid JSON ({e.Message}). Fix or delete it.", e);
        }
    }

    /// <summary>The entries of a scope as stored (a damaged or unreadable file reads as empty; see <see cref="Problem"/>).</summary>
    internal IReadOnlyList<ContingencyEntry> ReadEntries(ContinuityScope scope)
    {
        if (scope == ContinuityScope.Process)
        {
            lock (_processLock)
            {
                return _process.Entries.ToArray();
            }
        }

        var path = _pathOf(scope);
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists)
            {
                return [];
            }

            lock (_cache)
            {
                if (_cache.TryGetValue(path, out var c) && c.Mtime == info.LastWriteTimeUtc && c.Length == info.Length)
                {
                    return c.Entries;
                }
            }

            var entries = Parse(StateFile.Read(path), path).Entries.ToArray();
            lock (_cache)
            {
                _cache[path] = (info.LastWriteTimeUtc, info.Length, entries);
            }

            Problem = null;
            return entries;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            Problem = e.Message;
            return [];
        }
    }

    /// <summary>The last read problem (a damaged or unreadable state file), for Get-AiContingency's warning.</summary>
    public string? Problem { get; private set; }
}
