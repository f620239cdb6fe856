using System.Globalization;
using System.Net;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Hardening;

/// <summary>
/// OLLAMA_HOST as Ollama itself parses it (envconfig.Host in ollama/ollama): the value is trimmed of white space and
/// quotes and split on <c>://</c>. No scheme means http and port 11434, but <c>http://host</c> without a port means
/// port 80 and <c>https://host</c> port 443. A missing host is 127.0.0.1; anything after the first <c>/</c> is a path;
/// an invalid port is a warning and the default. An empty host with a port (<c>:11434</c>) listens on every interface.
/// </summary>
public sealed partial record OllamaHost
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

    /// <summary>True when the port in the value was not a number 0-65535 (Ollama then warns and uses the default).</summary>
    public bool InvalidPort { get; init; }

    /// <summary>Every interface: an empty host, 0.0.0.0 or :: (also ::ffff:0.0.0.0).</summary>
    public bool IsAllInterfaces => Host.Length == 0 || (IpText.TryParseAddress(Host, out var ip, out _) && (ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any) || (ip.IsIPv4MappedToIPv6 && ip.MapToIPv4().Equals(IPAddress.Any))));

    /// <summary>Loopback only: 127.0.0.0/8, ::1 or localhost.</summary>
    public bool IsLoopback => string.Equals(Host, "localhost", StringComparison.OrdinalIgnoreCase) || (IpText.TryParseAddress(Host, out var ip, out _) && IPAddress.IsLoopback(ip));

    /// <summary>
    /// Why Ollama could not listen on this value, or would not do what it says; empty when it is a valid listen
    /// address. Ollama itself only warns about a bad port (and uses the default) and fails at <c>net.Listen</c> for
    /// a host that is neither an IP address nor a host name, so these are refused before they are written: a scheme
    /// other than http or https, a port that is not 0-65535, a path, a host with characters no address or name has
    /// (<c>not:a:port:x</c>), and an IPv4 address with a leading zero (Go refuses it; others read it as octal).
    /// </summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        if (Scheme is not ("http" or "https"))
        {
            problems.Add($"the scheme '{Scheme}' is not http or https");
        }

        if (InvalidPort)
        {
            problems.Add("the port is not a number from 0 to 65535 (Ollama would silently use its default instead)");
        }

        if (Path.Length > 0)
        {
            problems.Add($"it has a path ('/{Path}'), which a listen address cannot have");
        }

        if (Host.Length > 0 && (Host.Contains(':') || IpText.LooksLikeIPv4(Host)))
        {
            if (!IpText.TryParseAddress(Host, out _, out var why))
            {
                problems.Add($"the host is not a valid IP address: {why}");
            }
        }
        else if (Host.Length > 0 && !HostName().IsMatch(Host))
        {
            problems.Add($"the host '{Host}' is neither an IP address nor a host name");
        }

        return problems;
    }

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
            // Go's net.ParseIP: strict (no leading zeros, no short forms), like the module's own parser.
            var bare = hostport.Trim('[', ']');
            if (IpText.TryParseAddress(bare, out var ip, out _))
            {
                host = ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4().ToString() : ip.ToString();
            }
            else if (hostport.Length > 0)
            {
                host = hostport;
            }
        }

        var portNumber = 0;
        var invalidPort = false;
        if (!int.TryParse(port, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out portNumber) || portNumber < 0 || portNumber > 65535)
        {
            warnings.Add($"OLLAMA_HOST '{value}': invalid port '{port}', Ollama uses the default {defaultPort}.");
            portNumber = int.Parse(defaultPort, CultureInfo.InvariantCulture);
            usedDefault = true;
            invalidPort = true;
        }

        var result = new OllamaHost
        {
            Raw = value,
            Scheme = scheme,
            Host = host,
            Port = portNumber,
            Path = path,
            PortFromScheme = fromScheme && usedDefault,
            InvalidPort = invalidPort,
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

    [System.Text.RegularExpressions.GeneratedRegex(@"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")]
    private static partial System.Text.RegularExpressions.Regex HostName();

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
