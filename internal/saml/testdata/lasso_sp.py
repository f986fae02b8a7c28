#!/usr/bin/python3
"""An Atlassian-shaped SAML SP played by Lasso (Entr'ouvert), for idbridge's tests.

  lasso_sp.py request  DIR   -> prints the HTTP-Redirect URL of an AuthnRequest
                                 and keeps the login state in DIR/login.dump
  lasso_sp.py response DIR B64 -> checks the Response (signature, InResponseTo,
                                 audience, times) and prints JSON of what it read
DIR holds sp.xml (SP metadata), sp.key, sp.crt and idp.xml (idbridge metadata).
"""
import json
import os
import sys

import lasso


def server(d):
    s = lasso.Server(os.path.join(d, "sp.xml"), os.path.join(d, "sp.key"), None, os.path.join(d, "sp.crt"))
    s.addProvider(lasso.PROVIDER_ROLE_IDP, os.path.join(d, "idp.xml"))
    return s


def main():
    mode, d = sys.argv[1], sys.argv[2]
    s = server(d)
    if mode == "request":
        login = lasso.Login(s)
        login.initAuthnRequest(None, lasso.HTTP_METHOD_REDIRECT)
        login.request.nameIdPolicy.format = lasso.SAML2_NAME_IDENTIFIER_FORMAT_EMAIL
        login.request.nameIdPolicy.allowCreate = True
        login.request.protocolBinding = lasso.SAML2_METADATA_BINDING_POST
        login.buildAuthnRequestMsg()
        with open(os.path.join(d, "login.dump"), "w") as f:
            f.write(login.dump())
        print(login.msgUrl)
        return
    with open(os.path.join(d, "login.dump")) as f:
        login = lasso.Login.newFromDump(s, f.read())
    login.processAuthnResponseMsg(sys.argv[3])
    login.acceptSso()
    a = login.assertion
    attrs = {}
    for st in a.attributeStatement:
        for at in st.attribute:
            attrs[at.name] = [v.any[0].content for v in at.attributeValue]
    print(json.dumps({
        "name_id": a.subject.nameID.content,
        "format": a.subject.nameID.format,
        "attributes": attrs,
        "destination": login.response.destination,
        "in_response_to": login.response.inResponseTo,
        "request_id": login.request.id if login.request else None,
        "audience": a.conditions.audienceRestriction[0].audience,
    }))


if __name__ == "__main__":
    try:
        main()
    except lasso.Error as e:
        print("lasso error:", e, file=sys.stderr)
        sys.exit(1)
