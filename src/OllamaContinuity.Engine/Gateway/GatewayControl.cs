using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using OllamaContinuity.Contingency;
using OllamaContinuity.Failover;

namespace OllamaContinuity.Gateway;

/// <summary>How to start the gateway process (Start-AiGateway's parameters).</summary>
public sealed record GatewayStartSettings
{
    /// <summary>The folder holding OllamaContinuity.Gateway.dll (the module's Gateway/ folder).</summary>
    public required string GatewayDirectory { get; init; }

    /// <summary>The address to listen on. The default value is 127.0.0.1.</summary>
    public string Bind { get; init; } = "127.0.0.1";

    /// <summary>The TCP port. The default value is 11435.</summary>
    public int Port { get; init; } = 11435;

    /// <summary>Allow a non-loopback address (the gateway refuses one without it).</summary>
    public bool Force { get; init; }

    /// <summary>
    /// The client tokens file. The default value is gateway-tokens.json in the user's state directory; null: none
    /// (then <see cref="ClientTokens"/> must hold at least one token).
    /// </summary>
    public string? TokensFile { get; init; } = GatewayControl.DefaultTokensFile;

    /// <summary>
    /// Client tokens held in memory (read from SecretManagement), handed to the gateway over its standard input
    /// (<c>--tokens-stdin</c>); combined with <see cref="TokensFile"/> when both are given.
    /// </summary>
    public IReadOnlyList<GatewayClientToken> ClientTokens { get; init; } = [];

    public long? MaxBodyBytes { get; init; }
    public int? MaxConcurrentRequests { get; init; }
    public int? RatePerMinute { get; init; }
    public IReadOnlyList<string> Models { get; init; } = [];
    public string? LogPath { get; init; }

    /// <summary>Environment variables for the gateway (the CLOUD_* and OLLAMA_* settings); a null value removes one.</summary>
    public IReadOnlyDictionary<string, string?> Environment { get; init; } = new Dictionary<string, string?>();

    /// <summary>How long to wait for the gateway to listen. The default value is 20 seconds.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(20);
}

/// <summary>The gateway as Get-AiGateway shows it: where it listens, its process, its health and its counts.</summary>
public sealed class GatewayStatus
{
    public bool Running { get; init; }
    public string? Url { get; init; }
    public string? Bind { get; init; }
    public int Port { get; init; }
    public int ProcessId { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    /// <summary>Healthy (GET /healthz answered), Unhealthy (the process runs but does not answer), or Stopped.</summary>
    public string Health { get; init; } = "Stopped";
    public long? Requests { get; init; }
    public long? Failovers { get; init; }
    public long? InFlight { get; init; }
    /// <summary>The cloud circuits the gateway knows, as "endpoint=State" separated by "; ".</summary>
    public string? Circuits { get; init; }
    public string? TokensFile { get; init; }
    /// <summary>The gateway's owner-only control socket (Linux and macOS), where the counts are read without a client token.</summary>
    public string? ControlSocket { get; init; }
    public required string StateFile { get; init; }
    /// <summary>Where the detached gateway writes its own console output.</summary>
    public string? ConsoleLog { get; init; }

    internal DateTime? ProcessStartTime { get; init; }
}

/// <summary>
/// Starts, finds and stops the gateway process (the engine side of Start-, Get- and Stop-AiGateway). Its state file
/// (written by the gateway once it listens, owner-only) is gateway.json in the user's state directory.
/// </summary>
public static class GatewayControl
{
    public const string GatewayAssembly = "OllamaContinuity.Gateway.dll";

    // Loopback only, no proxy: the gateway's own address.
    private static readonly Lazy<HttpClient> Http = new(() => new HttpClient(new SocketsHttpHandler { UseProxy = false, ConnectTimeout = TimeSpan.FromSeconds(3) }) { Timeout = TimeSpan.FromSeconds(5) });

    public static string StateFile => Path.Combine(StatePaths.Directory(ContinuityScope.User), "gateway.json");

    public static string DefaultTokensFile => Path.Combine(StatePaths.Directory(ContinuityScope.User), "gateway-tokens.json");

    public static string ConsoleLogFile => Path.Combine(StatePaths.Directory(ContinuityScope.User), "gateway.log");

    /// <summary>Creates a tokens file with one random client token (owner-only) when none exists; returns the token created, or null.</summary>
    public static string? EnsureTokensFile(string path, string clientName = "default")
    {
        if (File.Exists(path))
        {
            return null;
        }

        var token = "oc_" + Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var json = JsonSerializer.Serialize(new { tokens = new[] { new { name = clientName, token } } }, new JsonSerializerOptions { WriteIndented = true });
        OwnerOnlyFile.WriteAllBytesAtomic(path, Encoding.UTF8.GetBytes(json));
        return token;
    }

    /// <summary>The first token of a tokens file (what Get-AiGateway uses to read the counts), or null.</summary>
    public static string? FirstToken(string? path)
    {
        try
        {
            if (path is null || !File.Exists(path))
            {
                return null;
            }

            using var doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            return doc.RootElement.TryGetProperty("tokens", out var t) && t.ValueKind == JsonValueKind.Array && t.GetArrayLength() > 0 && t[0].TryGetProperty("token", out var v)
                ? v.GetString()
                : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }

    /// <summary>The gateway's command line (after the dll), in order.</summary>
    public static IReadOnlyList<string> BuildArguments(GatewayStartSettings s)
    {
        var args = new List<string> { "--bind", s.Bind, "--port", s.Port.ToString(CultureInfo.InvariantCulture) };
        if (s.TokensFile is { } tokensFile)
        {
            args.AddRange(["--tokens-file", Path.GetFullPath(tokensFile)]);
        }

        if (s.ClientTokens.Count > 0)
        {
            // Only the switch: the tokens themselves go over standard input (see StartAsync).
            args.Add("--tokens-stdin");
        }

        args.AddRange(["--state-file", StateFile, "--console-log", ConsoleLogFile]);
        AddLimitArguments(args, s.Force, s.MaxBodyBytes, s.MaxConcurrentRequests, s.RatePerMinute, s.Models);
        if (s.LogPath is { } log)
        {
            args.AddRange(["--log-path", Path.GetFullPath(log)]);
        }

        return args;
    }

    /// <summary>The options Start-AiGateway and Install-AiGateway pass alike: -Force, the limits and the model names.</summary>
    internal static void AddLimitArguments(List<string> args, bool force, long? maxBodyBytes, int? maxConcurrentRequests, int? ratePerMinute, IEnumerable<string> models)
    {
        if (force)
        {
            args.Add("--force");
        }

        if (maxBodyBytes is long b)
        {
            args.AddRange(["--max-body-bytes", b.ToString(CultureInfo.InvariantCulture)]);
        }

        if (maxConcurrentRequests is int c)
        {
            args.AddRange(["--max-concurrency", c.ToString(CultureInfo.InvariantCulture)]);
        }

        if (ratePerMinute is int r)
        {
            args.AddRange(["--rate-per-minute", r.ToString(CultureInfo.InvariantCulture)]);
        }

        foreach (var m in models)
        {
            args.AddRange(["--model", m]);
        }
    }

    /// <summary>
    /// The dotnet host that runs the gateway: the one running this process when it is dotnet (pwsh as a .NET tool),
    /// else the host of this runtime's installation, else <c>dotnet</c> on PATH.
    /// </summary>
    public static string DotnetHost()
    {
        var exe = OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet";
        if (Environment.ProcessPath is { } self && Path.GetFileName(self).Equals(exe, StringComparison.OrdinalIgnoreCase))
        {
            return self;
        }

        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } hostPath && File.Exists(hostPath))
        {
            return hostPath;
        }

        // <root>/shared/Microsoft.NETCore.App/<version>/ -> <root>/dotnet
        var runtimeDir = RuntimeEnvironment.GetRuntimeDirectory();
        var root = Path.GetFullPath(Path.Combine(runtimeDir, "..", "..", ".."));
        var candidate = Path.Combine(root, exe);
        return File.Exists(candidate) ? candidate : exe;
    }

    /// <summary>Starts the gateway detached and waits until it listens (its state file appears with its PID).</summary>
    public static async Task<GatewayStatus> StartAsync(GatewayStartSettings s, CancellationToken cancellationToken)
    {
        var dll = Path.Combine(s.GatewayDirectory, GatewayAssembly);
        if (!File.Exists(dll))
        {
            throw new FileNotFoundException($"The gateway is not laid out beside the module ({dll} is missing). Build the module with build.ps1.", dll);
        }

        if (s.TokensFile is null && s.ClientTokens.Count == 0)
        {
            throw new InvalidOperationException("The gateway needs client tokens: a tokens file, tokens from secrets, or both.");
        }

        if (Read() is { Running: true } running)
        {
            throw new InvalidOperationException($"A gateway is already running (PID {running.ProcessId}, {running.Url}). Stop it first with Stop-AiGateway.");
        }

        TryDelete(StateFile);
        var psi = new ProcessStartInfo(DotnetHost())
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = s.GatewayDirectory,
        };
        psi.ArgumentList.Add(dll);
        foreach (var a in BuildArguments(s))
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var (k, v) in s.Environment)
        {
            if (v is null)
            {
                psi.Environment.Remove(k);
            }
            else
            {
                psi.Environment[k] = v;
            }
        }

        using var process = Process.Start(psi) ?? throw new InvalidOperationException("The gateway process could not be started.");
        await HandOverTokensAsync(process, s.ClientTokens, cancellationToken).ConfigureAwait(false);
        // Anything printed before --console-log takes over (a bad option) is read here.
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var deadline = DateTime.UtcNow + s.StartTimeout;
        while (DateTime.UtcNow < deadline)
        {
            if (Read() is { ProcessId: var pid } status && pid == process.Id)
            {
                return status;
            }

            if (process.HasExited)
            {
                var why = (await stderr.ConfigureAwait(false)).Trim();
                if (why.Length == 0)
                {
                    why = (await stdout.ConfigureAwait(false)).Trim();
                }

                if (why.Length == 0)
                {
                    why = TailOf(ConsoleLogFile);
                }

                throw new InvalidOperationException($"The gateway exited at start (code {process.ExitCode}): {FirstLine(why)}");
            }

            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }

        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
        }

        throw new TimeoutException($"The gateway did not listen within {s.StartTimeout.TotalSeconds:0} s; see {ConsoleLogFile}.");
    }

    /// <summary>
    /// Writes the in-memory client tokens to the gateway's standard input and closes it (the gateway reads one
    /// document until its end, then never reads stdin again).
    /// Why standard input: a pipe between two processes of the same user is the one channel here that leaves no
    /// copy behind. A command-line argument is readable by every local user (/proc/PID/cmdline, ps); an environment
    /// variable stays readable by the user and root for the process's whole life (/proc/PID/environ) and is inherited
    /// by anything it starts; a file, even owner-only and deleted at once, puts the token on disk (backups, journals,
    /// a crash between write and delete). A hash-only file would be safe too, and is what a service uses
    /// (<see cref="GatewayClientTokens.WriteHashedFile"/>, since a service manager cannot hand over stdin), but it
    /// still leaves a file to clean up for a gateway that a user starts from a session. The buffer is zeroed once written.
    /// </summary>
    private static async Task HandOverTokensAsync(Process process, IReadOnlyList<GatewayClientToken> tokens, CancellationToken cancellationToken)
    {
        var document = tokens.Count > 0 ? GatewayClientTokens.ToStdinDocument(tokens) : [];
        try
        {
            if (document.Length > 0)
            {
                await process.StandardInput.BaseStream.WriteAsync(document, cancellationToken).ConfigureAwait(false);
                await process.StandardInput.BaseStream.FlushAsync(cancellationToken).ConfigureAwait(false);
            }

            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The gateway exited before reading (a bad option): the start loop reports why.
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(document);
        }
    }

    /// <summary>The gateway of the state file (Running false when its process is gone), or null when there is none.</summary>
    public static GatewayStatus? Read()
    {
        if (!File.Exists(StateFile))
        {
            return null;
        }

        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(StateFile));
            var root = doc.RootElement;
            var pid = root.TryGetProperty("pid", out var p) && p.TryGetInt32(out var pi) ? pi : 0;
            DateTime? processStart = root.TryGetProperty("processStartTime", out var ps) && ps.TryGetDateTime(out var pst) ? pst.ToUniversalTime() : null;
            var running = IsSameProcess(pid, processStart);
            return new GatewayStatus
            {
                Running = running,
                Health = running ? "Unknown" : "Stopped",
                Url = Str(root, "url"),
                Bind = Str(root, "bind"),
                Port = root.TryGetProperty("port", out var port) && port.TryGetInt32(out var po) ? po : 0,
                ProcessId = pid,
                StartedAt = root.TryGetProperty("startedAt", out var sa) && sa.TryGetDateTimeOffset(out var sat) ? sat : null,
                TokensFile = Str(root, "tokensFile"),
                ControlSocket = Str(root, "controlSocket"),
                StateFile = StateFile,
                ConsoleLog = ConsoleLogFile,
                ProcessStartTime = processStart,
            };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }

    /// <summary>An HTTP client over a Unix domain socket (the gateway's control socket); the URL's host is ignored.</summary>
    public static HttpClient ControlSocketClient(string socketPath) => new(new SocketsHttpHandler
    {
        UseProxy = false,
        ConnectTimeout = TimeSpan.FromSeconds(3),
        ConnectCallback = async (_, ct) =>
        {
            var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(socketPath), ct).ConfigureAwait(false);
                return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    }) { Timeout = TimeSpan.FromSeconds(5), BaseAddress = new Uri("http://localhost") };

    /// <summary>
    /// Adds health and counts: GET /healthz on the gateway's address, then GET /v1/gateway/status over its owner-only
    /// control socket when the state file names one (no token needed), else with a client token.
    /// </summary>
    public static async Task<GatewayStatus> QueryAsync(GatewayStatus status, string? token, CancellationToken cancellationToken)
    {
        var http = Http.Value;
        if (!status.Running || status.Url is null)
        {
            return status;
        }

        var health = "Unhealthy";
        long? requests = null, failovers = null, inFlight = null;
        string? circuits = null;
        try
        {
            using var h = await http.GetAsync(status.Url + "/healthz", cancellationToken).ConfigureAwait(false);
            health = h.IsSuccessStatusCode ? "Healthy" : "Unhealthy";
            var counts = await ReadCountsOverControlSocketAsync(status.ControlSocket, cancellationToken).ConfigureAwait(false);
            if (counts is null && token is not null)
            {
                using var m = new HttpRequestMessage(HttpMethod.Get, status.Url + "/v1/gateway/status");
                m.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                using var r = await http.SendAsync(m, cancellationToken).ConfigureAwait(false);
                if (r.IsSuccessStatusCode)
                {
                    counts = await r.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
                }
            }

            if (counts is not null)
            {
                using var doc = JsonDocument.Parse(counts);
                var root = doc.RootElement;
                requests = root.GetProperty("requests").GetInt64();
                failovers = root.GetProperty("failovers").GetInt64();
                inFlight = root.GetProperty("inFlight").GetInt64();
                circuits = string.Join("; ", root.GetProperty("circuits").EnumerateArray().Select(c => $"{Str(c, "endpoint")}={Str(c, "state")}"));
            }
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException or KeyNotFoundException or InvalidOperationException)
        {
            // Health stays Unhealthy.
        }

        return new GatewayStatus
        {
            Running = true, Url = status.Url, Bind = status.Bind, Port = status.Port, ProcessId = status.ProcessId, StartedAt = status.StartedAt,
            Health = health, Requests = requests, Failovers = failovers, InFlight = inFlight, Circuits = circuits,
            TokensFile = status.TokensFile, ControlSocket = status.ControlSocket, StateFile = status.StateFile, ConsoleLog = status.ConsoleLog, ProcessStartTime = status.ProcessStartTime,
        };
    }

    /// <summary>The body of GET /v1/gateway/status over the control socket, or null when there is none or it does not answer.</summary>
    private static async Task<byte[]?> ReadCountsOverControlSocketAsync(string? socketPath, CancellationToken cancellationToken)
    {
        if (socketPath is null || OperatingSystem.IsWindows() || !File.Exists(socketPath))
        {
            return null;
        }

        try
        {
            using var client = ControlSocketClient(socketPath);
            using var r = await client.GetAsync("/v1/gateway/status", cancellationToken).ConfigureAwait(false);
            return r.IsSuccessStatusCode ? await r.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false) : null;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException or System.Net.Sockets.SocketException or UnauthorizedAccessException)
        {
            // Not reachable (permissions, a gateway going away): the token path, as before.
            return null;
        }
    }

    /// <summary>Stops the gateway of the state file (only that process: its PID and start time must match); true when one was stopped.</summary>
    public static bool Stop(TimeSpan wait)
    {
        var status = Read();
        if (status is null)
        {
            return false;
        }

        var stopped = false;
        if (status.Running)
        {
            using var p = Process.GetProcessById(status.ProcessId);
            p.Kill(entireProcessTree: true);
            p.WaitForExit(wait);
            stopped = true;
        }

        TryDelete(StateFile);
        if (status.ControlSocket is { } socket)
        {
            // A killed gateway cannot remove its control socket.
            TryDelete(socket);
        }

        return stopped;
    }

    private static bool IsSameProcess(int pid, DateTime? startUtc)
    {
        if (pid <= 0)
        {
            return false;
        }

        try
        {
            using var p = Process.GetProcessById(pid);
            if (p.HasExited)
            {
                return false;
            }

            // A recycled PID is another program: the start time must match (to the second).
            return startUtc is null || Math.Abs((p.StartTime.ToUniversalTime() - startUtc.Value).TotalSeconds) < 2;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    private static string? Str(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    private static string TailOf(string path)
    {
        try
        {
            return File.Exists(path) ? string.Join("\n", File.ReadLines(path).TakeLast(5)) : "";
        }
        catch (IOException)
        {
            return "";
        }
    }

    private static string FirstLine(string s) => s.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "(no output)";
}
