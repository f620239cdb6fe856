using System.Text.Json;
using System.Text.Json.Serialization;
using OllamaContinuity.Failover;
using OllamaContinuity.Internal;

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
    // The last read of each state file, by the version it was read at (see Read): a request costs one statx per
    // scope while nothing changed, instead of reading, parsing and checking the file every time.
    private readonly Dictionary<string, (FileVersion? Version, DateTime Mtime, long Length, ContingencyEntry[] Entries)> _cache = new(StringComparer.Ordinal);
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

    /// <summary>
    /// What to do for <paramref name="workflow"/>: null (the cloud first), a contingency (Ollama), or, when a state
    /// file cannot be read and nothing readable covers the workflow, a decision whose
    /// <see cref="ContingencyDecision.Unreadable"/> says why the request must not go to the cloud: the damaged file
    /// may have protected any workflow. A workflow that the file's last good copy covers is served from Ollama with a
    /// warning; with <see cref="UnreadableStateVariable"/>=Ollama (or <see cref="UnreadableStatePolicy"/>) every
    /// request is.
    /// </summary>
    public ContingencyDecision? Evaluate(string? workflow, DateTimeOffset now)
    {
        ContingencyDecision? first = null;
        var approval = false;
        var broken = new List<ContingencyScopeState>();
        ContingencyScopeState? coveredByLastGood = null;
        foreach (var scope in EvaluationOrder)
        {
            var state = Read(scope);
            IReadOnlyList<ContingencyEntry> entries = state.Entries;
            if (state.Problem is not null)
            {
                broken.Add(state);
                entries = state.LastGood?.Entries ?? [];
            }

            foreach (var e in entries)
            {
                if (!e.IsActive(now) || !e.Matches(workflow))
                {
                    continue;
                }

                approval |= e.RequireApproval;
                if (first is null)
                {
                    first = new ContingencyDecision(scope.ToString(), e.Reason ?? "manual contingency", e.Since, e.Until);
                    coveredByLastGood = state.Problem is null ? null : state;
                }
            }
        }

        if (broken.Count == 0)
        {
            return first is null ? null : first with { RequireApproval = approval };
        }

        var what = string.Join(" ", broken.Select(b => b.Problem!.Message));
        var name = workflow is null ? "requests without a workflow" : $"workflow '{workflow}'";
        if (first is not null)
        {
            var how = coveredByLastGood is { LastGood: { } lg }
                ? $"its last good copy ({lg.Path}, saved {lg.SavedAt:u}) puts {name} under contingency"
                : $"the {first.Source} scope puts {name} under contingency";
            return first with
            {
                RequireApproval = approval,
                Warning = $"{what} Served from Ollama because {how}. Fix or delete the damaged file.",
            };
        }

        var policy = UnreadableStatePolicy ?? Environment.GetEnvironmentVariable(UnreadableStateVariable)?.Trim();
        if (string.Equals(policy, "Ollama", StringComparison.OrdinalIgnoreCase))
        {
            return new ContingencyDecision(broken[0].Scope.ToString(), $"the contingency state cannot be read; serving from Ollama ({UnreadableStateVariable}=Ollama)")
            {
                RequireApproval = approval,
                Warning = $"{what} It is unknown whether {name} must stay off the cloud, so it is served from Ollama ({UnreadableStateVariable}=Ollama). Fix or delete the damaged file.",
            };
        }

        var badPolicy = string.IsNullOrEmpty(policy) || string.Equals(policy, "Fail", StringComparison.OrdinalIgnoreCase)
            ? ""
            : $" ({UnreadableStateVariable}='{policy}' is neither Fail nor Ollama, so Fail applies.)";
        return new ContingencyDecision(broken[0].Scope.ToString(), "the contingency state cannot be read")
        {
            Unreadable = $"{what} It is unknown whether {name} must stay off the cloud, so the request was not sent. Fix the file, delete it, "
                + $"restore its last good copy ({string.Join(", ", broken.Select(b => ContingencyService.LastGoodPath(b.Path!)))}) if it is there, "
                + $"or set {UnreadableStateVariable}=Ollama to serve every request from Ollama meanwhile.{badPolicy}",
        };
    }

    /// <summary>
    /// How long a state file must have been unchanged (its ctime on Linux, its mtime elsewhere) before the version
    /// read is reused without reading the file again. Timestamps move in clock ticks (milliseconds on Linux, 2 s on
    /// FAT): a file changed twice within one tick keeps the same times, so a version younger than this is read
    /// again on every request. The default value is 2 seconds.
    /// </summary>
    internal TimeSpan StableAfter { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The environment variable that decides what happens when a state file cannot be read: Fail (the default) or Ollama.</summary>
    public const string UnreadableStateVariable = "OLLAMACONTINUITY_UNREADABLE_STATE";

    /// <summary>Overrides <see cref="UnreadableStateVariable"/> (Fail or Ollama). The default value is null: the environment decides.</summary>
    public string? UnreadableStatePolicy { get; set; }

    /// <summary>The active entries of a scope (expired ones are left out). Throws <see cref="ContingencyStateException"/> when its file cannot be read.</summary>
    public IReadOnlyList<ContingencyStatus> List(ContinuityScope scope)
    {
        var now = Time.GetUtcNow();
        var state = Read(scope);
        if (state.Problem is { } problem)
        {
            throw problem;
        }

        return state.Entries.Where(e => e.IsActive(now)).Select(e => ContingencyStatus.From(e, scope.ToString(), true, false, PathOf(scope))).ToArray();
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
        var worldReadable = scope == ContinuityScope.Machine;
        byte[]? good = null;
        var output = StateFile.Update(path, worldReadable, bytes =>
        {
            var state = Parse(bytes, path);
            var (changed, result) = change(state);
            var content = changed ? JsonSerializer.SerializeToUtf8Bytes(state, Json) : null;
            good = content ?? bytes;
            return (content, result);
        });

        // Outside the lock: the copy is a convenience, and other writers need not wait for it.
        if (good is not null)
        {
            KeepLastGood(path, good, worldReadable, onlyIfChanged: true);
        }

        return output;
    }

    /// <summary>Reads and validates a whole state document; an absent file is an empty state.</summary>
    private static ContingencyState Parse(byte[]? bytes, string path) =>
        bytes is null ? new ContingencyState() : ContingencyStateReader.Parse(bytes, path);

    /// <summary>
    /// What a scope holds now: its entries, or why its file cannot be read (and then the last good copy, if any).
    /// A file that cannot be read is never taken for an empty one.
    /// </summary>
    public ContingencyScopeState Read(ContinuityScope scope)
    {
        if (scope == ContinuityScope.Process)
        {
            lock (_processLock)
            {
                return new ContingencyScopeState(scope, null, _process.Entries.ToArray(), null, null);
            }
        }

        var path = _pathOf(scope);
        try
        {
            // One statx on Linux (device, inode, size, mtime, ctime); elsewhere .NET's file info (mtime, size).
            var now = DateTimeOffset.UtcNow; // the file system's clock, not Time (tests move Time)
            FileVersion? version = null;
            DateTime mtime = default;
            long length = 0;
            bool stable;
            if (LinuxFile.TryStat(path, out var v))
            {
                if (v is not { } found)
                {
                    return new ContingencyScopeState(scope, path, [], null, null);
                }

                version = found;
                stable = found.IsRegular && !found.ChangedWithin(StableAfter, now);
            }
            else
            {
                var info = new FileInfo(path);
                if (!info.Exists && !System.IO.Directory.Exists(path))
                {
                    return new ContingencyScopeState(scope, path, [], null, null);
                }

                mtime = info.LastWriteTimeUtc;
                length = info.Exists ? info.Length : -1;
                stable = info.Exists && now.UtcDateTime - mtime >= StableAfter;
            }

            lock (_cache)
            {
                if (_cache.TryGetValue(path, out var c) && c.Version == version && c.Mtime == mtime && c.Length == length)
                {
                    return new ContingencyScopeState(scope, path, c.Entries, null, null);
                }
            }

            var bytes = StateFile.Read(path);
            var entries = Parse(bytes, path).Entries.ToArray();
            lock (_cache)
            {
                // Only a version that has been still for a while is trusted next time: a file changed again within
                // the same clock tick keeps its ctime (and mtime), and would otherwise be read from here, stale.
                if (stable)
                {
                    _cache[path] = (version, mtime, length, entries);
                }
                else
                {
                    _cache.Remove(path);
                }
            }

            if (bytes is not null)
            {
                KeepLastGood(path, bytes, scope == ContinuityScope.Machine, onlyIfChanged: true);
            }

            return new ContingencyScopeState(scope, path, entries, null, null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            var problem = e as ContingencyStateException ?? new ContingencyStateException(path, null,
                e is UnauthorizedAccessException ? $"The contingency state file {path} cannot be read: access denied." : $"The contingency state file {path} cannot be read: {e.Message}", e);
            return new ContingencyScopeState(scope, path, [], problem, ReadLastGood(path));
        }
    }

    /// <summary>The entries of a scope as stored (a damaged or unreadable file reads as empty here; <see cref="Evaluate"/> and <see cref="Read"/> say so).</summary>
    internal IReadOnlyList<ContingencyEntry> ReadEntries(ContinuityScope scope) => Read(scope).Entries;

    /// <summary>The copy of the last state file that was read or written whole: <c>&lt;file&gt;.last-good</c>.</summary>
    public static string LastGoodPath(string path) => path + ".last-good";

    private static void KeepLastGood(string path, byte[] bytes, bool worldReadable, bool onlyIfChanged)
    {
        var copy = LastGoodPath(path);
        try
        {
            if (onlyIfChanged && BoundedFile.ReadAll(copy) is { } old && old.AsSpan().SequenceEqual(bytes))
            {
                return;
            }

            StateFile.WriteCopy(copy, bytes, worldReadable);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            // Best effort: a reader of the machine file may not write its directory.
        }
    }

    private static ContingencyLastGood? ReadLastGood(string path)
    {
        var copy = LastGoodPath(path);
        try
        {
            if (BoundedFile.ReadAll(copy) is not { } bytes)
            {
                return null;
            }

            var state = ContingencyStateReader.Parse(bytes, copy);
            return new ContingencyLastGood(copy, new DateTimeOffset(File.GetLastWriteTimeUtc(copy), TimeSpan.Zero), state.Entries.ToArray());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            return null;
        }
    }
}
