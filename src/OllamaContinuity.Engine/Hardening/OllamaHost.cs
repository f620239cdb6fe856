using System.Globalization;
using System.Net;

namespace OllamaContinuity.Hardening;

/// <summary>
/// OLLAMA_HOST as Ollama itself parses it (envconfig.Host in ollama/ollama): the value is trimmed of white space and
/// quotes and split on <c>://</c>. No scheme means http and port 11434, but <c>http://host</c> without a port means
/// port 80 and <c>https://host</c> port 443. A missing host is 127.0.0.1; anything after the first <c>/</c> is a path;
/// an invalid port is a warning and the default. An empty host with a port (<c>:11434</c>) listens on every interface.
/// </summary>
public sealed record OllamaHost
{
    /// <summary>Ollama's own default port.</summary>
    public const int DefaultPort = 11434;

    /// <summary>The value as given (null or empty when OLLAMA_HOST is unset).</summary>
    public string? Raw { get; init; }

    public string Scheme { get; init; } = "http";

    /// <summary>The host part; empty means every interface (Go's <c>net.Listen(":port")</c>).</summary>
    public string Host { get; init; } = "127.0.0.1";

    public int Port { get; init; } = DefaultPort;

    public string Path { get; init; } = "";

    /// <summary>True when the port came from the scheme's default (http 80, https 443) rather than from the value.</summary>
    public bool PortFromScheme { get; init; }

    /// <summary>Warnings Ollama would log, and the traps this module warns about.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>True when the value moves Ollama off 11434 without naming a port (the <c>http://host</c> trap).</summary>
    public bool MovesOffDefaultPortByAccident => PortFromScheme && Port != DefaultPort;

    /// <summary>The listen address Ollama passes to net.Listen (<c>host:port</c>, IPv6 in brackets).</summary>
    public string ListenAddress => JoinHostPort(Host, Port);

    /// <summary>Every interface: an empty host, 0.0.0.0 or ::.</summary>
    public bool IsAllInterfaces => Host.Length == 0 || (IPAddress.TryParse(Host, out var ip) && (ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any)));

    /// <summary>Loopback only: 127.0.0.0/8, ::1 or localhost.</summary>
    public bool IsLoopback => string.Equals(Host, "localhost", StringComparison.OrdinalIgnoreCase) || (IPAddress.TryParse(Host, out var ip) && IPAddress.IsLoopback(ip));

    public override string ToString() => $"{Scheme}://{ListenAddress}" + (Path.Length > 0 ? "/" + Path : "");

    /// <summary>Parses a value of OLLAMA_HOST exactly as Ollama does. Null or blank gives the default 127.0.0.1:11434.</summary>
    public static OllamaHost Parse(string? value)
    {
        var warnings = new List<string>();
        var s = (value ?? "").Trim().Trim('"', '\'');
        var defaultPort = DefaultPort.ToString(CultureInfo.InvariantCulture);
        string scheme, hostport;
        var fromScheme = false;
        var cut = s.IndexOf("://", StringComparison.Ordinal);
        if (cut < 0)
        {
            (scheme, hostport) = ("http", s);
        }
        else
        {
            (scheme, hostport) = (s[..cut], s[(cut + 3)..]);
            if (scheme == "http")
            {
                (defaultPort, fromScheme) = ("80", true);
            }
            else if (scheme == "https")
            {
                (defaultPort, fromScheme) = ("443", true);
            }
        }

        var path = "";
        var slash = hostport.IndexOf('/');
        if (slash >= 0)
        {
            path = hostport[(slash + 1)..];
            hostport = hostport[..slash];
        }

        var usedDefault = false;
        if (!TrySplitHostPort(hostport, out var host, out var port))
        {
            host = "127.0.0.1";
            port = defaultPort;
            usedDefault = true;
            var bare = hostport.Trim('[', ']');
            if (IPAddress.TryParse(bare, out var ip) && (bare.Contains(':') || IsDottedQuad(bare)))
            {
                host = ip.ToString();
            }
            else if (hostport.Length > 0)
            {
                host = hostport;
            }
        }

        var portNumber = 0;
        if (!int.TryParse(port, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out portNumber) || portNumber < 0 || portNumber > 65535)
        {
            warnings.Add($"OLLAMA_HOST '{value}': invalid port '{port}', Ollama uses the default {defaultPort}.");
            portNumber = int.Parse(defaultPort, CultureInfo.InvariantCulture);
            usedDefault = true;
        }

        var result = new OllamaHost
        {
            Raw = value,
            Scheme = scheme,
            Host = host,
            Port = portNumber,
            Path = path,
            PortFromScheme = fromScheme && usedDefault,
        };
        if (result.MovesOffDefaultPortByAccident)
        {
            warnings.Add($"OLLAMA_HOST '{value}' names the scheme {scheme} without a port, so Ollama listens on port {portNumber}, not {DefaultPort}. Write '{JoinHostPort(host, DefaultPort)}' (no scheme) or add ':{DefaultPort}'.");
        }

        if (result.Host.Length == 0)
        {
            warnings.Add($"OLLAMA_HOST '{value}' has no host: Ollama listens on every interface.");
        }

        return result with { Warnings = warnings };
    }

    public static string JoinHostPort(string host, int port) =>
        (host.Contains(':') ? $"[{host}]" : host) + ":" + port.ToString(CultureInfo.InvariantCulture);

    private static bool IsDottedQuad(string s) => s.Count(c => c == '.') == 3 && s.All(c => char.IsAsciiDigit(c) || c == '.');

    /// <summary>Go's net.SplitHostPort.</summary>
    internal static bool TrySplitHostPort(string hostport, out string host, out string port)
    {
        host = port = "";
        var i = hostport.LastIndexOf(':');
        if (i < 0)
        {
            return false;
        }

        int j = 0, k = 0;
        if (hostport[0] == '[')
        {
            var end = hostport.IndexOf(']');
            if (end < 0 || end + 1 == hostport.Length || end + 1 != i)
            {
                return false;
            }

            host = hostport[1..end];
            (j, k) = (1, end + 1);
        }
        else
        {
            host = hostport[..i];
            if (host.Contains(':'))
            {
                return false;
            }
        }

        if (hostport[j..].Contains('[') || hostport[k..].Contains(']'))
        {
            return false;
        }

        port = hostport[(i + 1)..];
        return true;
    }
}
