using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace OllamaContinuity.Internal;

/// <summary>
/// The one strict parser of IP address text in the module (firewall -AllowFrom, hardening -BindAddress, scan targets,
/// the drill's cloud address). <see cref="IPAddress.TryParse(string, out IPAddress)"/> reads <c>010.010.010.010</c>
/// as octal (8.8.8.8), <c>10.1</c> as 10.0.0.1 and <c>167772161</c> as 10.0.0.1; other tools read the same text
/// differently (Go rejects it, inet_aton agrees with .NET, people read decimal). Here IPv4 is exactly four dotted
/// decimal octets 0-255 and an octet with a leading zero is refused, so no text means two different addresses.
/// IPv6 goes to <see cref="IPAddress.TryParse(string, out IPAddress)"/>, with the same rule for an embedded IPv4
/// tail (<c>::ffff:10.0.0.1</c>) and no zone id.
/// </summary>
public static class IpText
{
    /// <summary>Parses an address; on failure <paramref name="problem"/> says why, in words for an admin.</summary>
    public static bool TryParseAddress(string? text, out IPAddress address, out string problem)
    {
        address = IPAddress.None;
        problem = "";
        var s = text ?? "";
        if (s.Length == 0)
        {
            problem = "the address is empty";
            return false;
        }

        if (s.Contains(':'))
        {
            if (s.Contains('%'))
            {
                problem = $"'{s}' has a zone id (%...), which is not accepted here";
                return false;
            }

            var tail = s[(s.LastIndexOf(':') + 1)..];
            if (tail.Contains('.') && !TryParseV4(tail, out _, out problem))
            {
                problem = $"'{s}': {problem}";
                return false;
            }

            if (!s.All(c => char.IsAsciiHexDigit(c) || c is ':' or '.') || !IPAddress.TryParse(s, out var v6) || v6.AddressFamily != AddressFamily.InterNetworkV6)
            {
                problem = $"'{s}' is not a valid IPv6 address";
                return false;
            }

            address = v6;
            return true;
        }

        if (!TryParseV4(s, out var v4, out problem))
        {
            problem = $"'{s}': {problem}";
            return false;
        }

        address = v4;
        return true;
    }

    /// <summary>True when <paramref name="text"/> is made of digits and dots only: meant as an IPv4 address, never a host name.</summary>
    public static bool LooksLikeIPv4(string text) => text.Length > 0 && text.Any(char.IsAsciiDigit) && text.All(c => char.IsAsciiDigit(c) || c == '.');

    /// <summary>Parses <c>address/prefix</c> (prefix 0-32 or 0-128, decimal). Host bits after the prefix are the caller's concern.</summary>
    public static bool TryParseNetwork(string? text, out IPAddress address, out int prefix, out string problem)
    {
        prefix = -1;
        var s = text ?? "";
        var slash = s.IndexOf('/');
        if (slash < 0)
        {
            address = IPAddress.None;
            problem = $"'{s}' has no /prefix";
            return false;
        }

        if (!TryParseAddress(s[..slash], out address, out problem))
        {
            return false;
        }

        var max = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        var p = s[(slash + 1)..];
        if (p.Length is 0 or > 3 || !p.All(char.IsAsciiDigit) || !int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out prefix) || prefix > max)
        {
            problem = $"'{s}' has an invalid prefix length: it must be 0 to {max} for an {(max == 32 ? "IPv4" : "IPv6")} address";
            prefix = -1;
            return false;
        }

        return true;
    }

    /// <summary>
    /// Why the host of <paramref name="uri"/> as written is ambiguous, or null. System.Uri reads an IPv4 host the
    /// way inet_aton does (<c>http://010.0.0.1</c> goes to 8.0.0.1, <c>http://10.1</c> to 10.0.0.1); a host that is
    /// an IPv4 address must be written as the strict dotted quad that System.Uri also reads.
    /// </summary>
    public static string? UriHostProblem(Uri uri)
    {
        if (!uri.IsAbsoluteUri || uri.HostNameType != UriHostNameType.IPv4)
        {
            return null;
        }

        var written = WrittenHost(uri.OriginalString);
        if (written is null || string.Equals(written, uri.Host, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        return TryParseAddress(written, out _, out var problem)
            ? $"the host '{written}' is read as {uri.Host}; write {uri.Host}"
            : $"the host '{written}' is read as {uri.Host} ({problem}); write the address you mean as four decimal numbers without leading zeros";
    }

    private static string? WrittenHost(string original)
    {
        var start = original.IndexOf("://", StringComparison.Ordinal);
        if (start < 0)
        {
            return null;
        }

        var rest = original[(start + 3)..];
        var end = rest.IndexOfAny(['/', '?', '#', '\\']);
        var authority = end < 0 ? rest : rest[..end];
        authority = authority[(authority.LastIndexOf('@') + 1)..];
        if (authority.StartsWith('['))
        {
            return null;
        }

        var colon = authority.LastIndexOf(':');
        return colon < 0 ? authority : authority[..colon];
    }

    private static bool TryParseV4(string s, out IPAddress address, out string problem)
    {
        address = IPAddress.None;
        problem = "";
        var parts = s.Split('.');
        if (parts.FirstOrDefault(p => p.Length > 1 && p[0] == '0' && p.All(char.IsAsciiDigit)) is { } zero)
        {
            problem = $"the IPv4 part '{zero}' has a leading zero, which some tools read as octal ({OctalHint(zero)}) and others as decimal; write it without the leading zero";
            return false;
        }

        if (parts.Length != 4 || parts.Any(p => p.Length is 0 or > 3 || !p.All(char.IsAsciiDigit)))
        {
            problem = "an IPv4 address is four decimal numbers 0-255 separated by dots (such as 192.168.1.10)";
            return false;
        }

        var bytes = new byte[4];
        for (var i = 0; i < 4; i++)
        {
            var v = int.Parse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture);
            if (v > 255)
            {
                problem = $"the IPv4 part '{parts[i]}' is larger than 255";
                return false;
            }

            bytes[i] = (byte)v;
        }

        address = new IPAddress(bytes);
        return true;
    }

    private static string OctalHint(string part)
    {
        try
        {
            return part.All(c => c is >= '0' and <= '7') ? Convert.ToInt32(part, 8).ToString(CultureInfo.InvariantCulture) : "invalid octal";
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            return "invalid octal";
        }
    }
}
