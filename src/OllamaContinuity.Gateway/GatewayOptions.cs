using System.Globalization;
using System.Net;

namespace OllamaContinuity.Gateway;

/// <summary>The gateway's own settings (the backends come from the same environment variables as Invoke-AiRequest).</summary>
internal sealed record GatewayOptions
{
    /// <summary>The default port (Ollama's is 11434; the gateway sits beside it).</summary>
    public const int DefaultPort = 11435;

    /// <summary>The address to listen on. The default value is 127.0.0.1; anything not loopback needs <see cref="Force"/>.</summary>
    public IPAddress Bind { get; init; } = IPAddress.Loopback;

    /// <summary>The TCP port; 0 picks a free one (printed on the LISTENING line). The default value is 11435.</summary>
    public int Port { get; init; } = DefaultPort;

    /// <summary>Allow a non-loopback bind address.</summary>
    public bool Force { get; init; }

    /// <summary>The client tokens file: see <see cref="ClientTokens"/>. This or <see cref="TokensFromStdin"/> (or both) is required.</summary>
    public string? TokensFile { get; init; }

    /// <summary>
    /// Read one client tokens document (the file's JSON shape) from standard input at start, until its end. How
    /// Start-AiGateway hands over tokens read from SecretManagement: never on disk, the command line or the environment.
    /// </summary>
    public bool TokensFromStdin { get; init; }

    /// <summary>The largest request body. The default value is 4 MiB; larger ones get 413.</summary>
    public long MaxBodyBytes { get; init; } = 4 * 1024 * 1024;

    /// <summary>Chat requests served at once; more get 429. The default value is 64.</summary>
    public int MaxConcurrentRequests { get; init; } = 64;

    /// <summary>Chat requests per minute per client token (a token can set its own). The default value is 600.</summary>
    public int RatePerMinute { get; init; } = 600;

    /// <summary>Model names clients may ask for besides the cloud and Ollama models and <c>ollamacontinuity</c>.</summary>
    public IReadOnlyList<string> ModelAliases { get; init; } = [];

    /// <summary>Where to write the gateway's state (PID, address, start time) for Get-AiGateway; null: none.</summary>
    public string? StateFile { get; init; }

    /// <summary>Where the gateway's own console output goes (a detached gateway has no console); null: the console.</summary>
    public string? ConsoleLogFile { get; init; }

    /// <summary>
    /// A settings file (NAME='value' lines, as Install-AiGateway writes gateway.env) whose values win over the process
    /// environment for the backends; null: the environment only. How the Windows service gets its settings and cloud key
    /// (a file only SYSTEM, Administrators and LocalService may read, not the registry).
    /// </summary>
    public string? EnvironmentFile { get; init; }

    /// <summary>The request log path (null: the environment or the module's default).</summary>
    public string? LogPath { get; init; }

    /// <summary>How long a client may take to send its headers (slowloris). The default value is 10 seconds.</summary>
    public TimeSpan RequestHeadersTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The slowest request body accepted after a grace period (slowloris). The default value is 240 bytes/s after 5 s.</summary>
    public double MinBodyBytesPerSecond { get; init; } = 240;

    public TimeSpan MinBodyRateGrace { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Run socket completions and the request's own code on the socket engine's thread instead of handing each to a
    /// thread-pool thread (Kestrel's UnsafePreferInlineScheduling and the runtime's inline socket completions). On by
    /// default on Linux, where it was measured (bench/README.md, scenario 5): it halves the gateway's CPU per whole answer
    /// and takes 55 to 155 µs off its added latency. Code that blocks there would hold up the other connections of that
    /// thread; a request waits on nothing but local files (the request log's append, the contingency log's, the
    /// contingency state's stat). Off: <c>--inline-io false</c> (or OLLAMACONTINUITY_GATEWAY_INLINE_IO=0), for a log on a
    /// slow network share.
    /// </summary>
    public bool InlineIo { get; init; } = DefaultInlineIo(Environment.GetEnvironmentVariable(InlineIoVariable));

    /// <summary>The environment variable that sets <see cref="InlineIo"/>'s default (0/false or 1/true).</summary>
    public const string InlineIoVariable = "OLLAMACONTINUITY_GATEWAY_INLINE_IO";

    internal static bool DefaultInlineIo(string? variable) => variable is { Length: > 0 } v ? Bool(v, InlineIoVariable) : OperatingSystem.IsLinux();

    public bool IsLoopback => IPAddress.IsLoopback(Bind);

    public const string Usage = """
        OllamaContinuity.Gateway (--tokens-file PATH | --tokens-stdin | both) [--bind 127.0.0.1] [--port 11435] [--force]
            [--max-body-bytes N] [--max-concurrency N] [--rate-per-minute N] [--model NAME]... [--state-file PATH]
            [--log-path PATH] [--console-log PATH] [--headers-timeout-sec N] [--environment-file PATH] [--inline-io true|false]
        --tokens-stdin reads {"tokens":[{"name":..,"token":..}]} from standard input once, until it is closed.
        --inline-io runs socket I/O and request code on the socket threads (default: true on Linux; also
        OLLAMACONTINUITY_GATEWAY_INLINE_IO=0|1); false hands each to the thread pool.
        Backends: CLOUD_PROVIDER, CLOUD_API_URL, CLOUD_API_KEY, CLOUD_MODEL, CLOUD_TIMEOUT, OLLAMA_URL, OLLAMA_MODEL,
        OLLAMA_TIMEOUT, CONNECT_TIMEOUT, FIRST_TOKEN_TIMEOUT (as Invoke-AiRequest), from the environment or from
        --environment-file: NAME='value' lines (or NAME="value" with \" \\ \$ \` escapes), # comments; its values win.
        """;

    /// <summary>Reads the command line; throws <see cref="ArgumentException"/> with a message for the user.</summary>
    public static GatewayOptions Parse(IReadOnlyList<string> args)
    {
        var o = new GatewayOptions();
        var aliases = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var a = args[i];
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{a} needs a value.");
            switch (a)
            {
                case "--bind":
                    var b = Value();
                    o = o with { Bind = b == "localhost" ? IPAddress.Loopback : IPAddress.TryParse(b, out var ip) ? ip : throw new ArgumentException($"--bind '{b}' is not an IP address.") };
                    break;
                case "--port":
                    o = o with { Port = Int(Value(), a, 0, 65535) };
                    break;
                case "--force":
                    o = o with { Force = true };
                    break;
                case "--tokens-file":
                    o = o with { TokensFile = Value() };
                    break;
                case "--tokens-stdin":
                    o = o with { TokensFromStdin = true };
                    break;
                case "--max-body-bytes":
                    o = o with { MaxBodyBytes = Int(Value(), a, 1024, int.MaxValue) };
                    break;
                case "--max-concurrency":
                    o = o with { MaxConcurrentRequests = Int(Value(), a, 1, 100_000) };
                    break;
                case "--rate-per-minute":
                    o = o with { RatePerMinute = Int(Value(), a, 1, 10_000_000) };
                    break;
                case "--model":
                    aliases.Add(Value());
                    break;
                case "--state-file":
                    o = o with { StateFile = Value() };
                    break;
                case "--console-log":
                    o = o with { ConsoleLogFile = Value() };
                    break;
                case "--environment-file":
                    o = o with { EnvironmentFile = Value() };
                    break;
                case "--log-path":
                    o = o with { LogPath = Value() };
                    break;
                case "--headers-timeout-sec":
                    o = o with { RequestHeadersTimeout = TimeSpan.FromSeconds(Int(Value(), a, 1, 3600)) };
                    break;
                case "--inline-io":
                    o = o with { InlineIo = Bool(Value(), a) };
                    break;
                default:
                    throw new ArgumentException($"Unknown option '{a}'.");
            }
        }

        return o with { ModelAliases = aliases };
    }

    private static bool Bool(string value, string name) => value.Trim().ToLowerInvariant() switch
    {
        "1" or "true" or "yes" or "on" => true,
        "0" or "false" or "no" or "off" => false,
        _ => throw new ArgumentException($"{name} '{value}' is not true or false."),
    };

    public const string NoTokensMessage = "Client tokens are required (--tokens-file and/or --tokens-stdin): every request to the gateway must carry one.";

    /// <summary>The client tokens of every source given (the file, then standard input); throws when none is given.</summary>
    public ClientTokens LoadTokens(Func<Stream> stdin)
    {
        if (TokensFile is null && !TokensFromStdin)
        {
            throw new ArgumentException(NoTokensMessage);
        }

        var sources = new List<ClientTokens>();
        if (TokensFile is { } file)
        {
            sources.Add(ClientTokens.Load(file));
        }

        if (TokensFromStdin)
        {
            using var input = stdin();
            sources.Add(ClientTokens.Read(input));
        }

        return ClientTokens.Combine([.. sources]);
    }

    /// <summary>The rules that keep the gateway from becoming one more open AI endpoint.</summary>
    public void Validate(ClientTokens? tokens)
    {
        if (tokens is null || tokens.Count == 0)
        {
            throw new ArgumentException(NoTokensMessage);
        }

        if (!IsLoopback && !Force)
        {
            throw new ArgumentException($"Binding {Bind} exposes the gateway beyond this machine; pass --force (Start-AiGateway -Force) to do it on purpose.");
        }
    }

    /// <summary>
    /// The backend settings: the <see cref="EnvironmentFile"/>'s values, then the process environment. Throws
    /// <see cref="ArgumentException"/> when the file is missing, not a regular file, too large or malformed; the message
    /// names the file and the line, never a value (one may be the cloud key).
    /// </summary>
    public Func<string, string?> Settings(Func<string, string?> environment)
    {
        if (EnvironmentFile is not { } path)
        {
            return environment;
        }

        var values = ReadEnvironmentFile(path);
        return name => values.TryGetValue(name, out var v) ? v : environment(name);
    }

    internal static IReadOnlyDictionary<string, string> ReadEnvironmentFile(string path)
    {
        string text;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists)
            {
                throw new ArgumentException($"--environment-file '{path}' does not exist" + (Directory.Exists(path) ? " as a file (it is a folder)." : "."));
            }

            if (info.LinkTarget is not null || (info.Attributes & (FileAttributes.Device | FileAttributes.ReparsePoint)) != 0)
            {
                throw new ArgumentException($"--environment-file '{path}' is not a regular file.");
            }

            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            if (stream.Length > GatewayServicePlanner.MaxEnvironmentFileBytes)
            {
                throw new ArgumentException($"--environment-file '{path}' is larger than {GatewayServicePlanner.MaxEnvironmentFileBytes / 1024} KiB: it is not a settings file.");
            }

            var buffer = new byte[GatewayServicePlanner.MaxEnvironmentFileBytes + 1];
            var read = 0;
            int n;
            while (read < buffer.Length && (n = stream.Read(buffer, read, buffer.Length - read)) > 0)
            {
                read += n;
            }

            if (read > GatewayServicePlanner.MaxEnvironmentFileBytes)
            {
                throw new ArgumentException($"--environment-file '{path}' is larger than {GatewayServicePlanner.MaxEnvironmentFileBytes / 1024} KiB: it is not a settings file.");
            }

            text = new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true).GetString(buffer, 0, read).TrimStart('\uFEFF');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.DecoderFallbackException)
        {
            // The system's message names the path only; a decoding error's message may quote bytes: not repeated.
            throw new ArgumentException($"--environment-file '{path}' cannot be read: " + (e is System.Text.DecoderFallbackException ? "it is not UTF-8 text." : e.Message));
        }

        try
        {
            return GatewayServicePlanner.ParseEnvironmentFile(text);
        }
        catch (FormatException e)
        {
            throw new ArgumentException($"--environment-file '{path}' is not a settings file: {e.Message} Expected NAME='value' lines (values are not shown).");
        }
    }

    private static int Int(string s, string name, int min, int max) =>
        int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= min && v <= max
            ? v
            : throw new ArgumentException($"{name} '{s}' is not a number between {min} and {max}.");
}
